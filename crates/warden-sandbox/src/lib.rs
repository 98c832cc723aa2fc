//! Isolates one function instance: namespaces, pivot_root, seccomp, Landlock, cgroups; the only crate with unsafe
