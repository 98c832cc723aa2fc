//! The executor seam: spawning instances from a small zygote process and watching them
