//! Hostile fixture run inside the sandbox by the integration tests and the benchmark.
//!
//! Each command tries one thing and prints one line: `ok`, `err <errno>`, or data.
//! It is dynamically linked, so tests bind the host's library directories read-only.

use std::io::{Read, Write};
use std::net::TcpStream;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(ret: i64) {
    if ret < 0 {
        println!("err {}", errno());
    } else {
        println!("ok");
    }
}

fn io_report<T>(r: std::io::Result<T>) {
    match r {
        Ok(_) => println!("ok"),
        Err(e) => println!("err {}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "status" => {
            // SAFETY: getuid/getgid have no preconditions.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            println!("uid {uid}\ngid {gid}\npid {}", std::process::id());
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            for line in status.lines() {
                if [
                    "CapInh",
                    "CapPrm",
                    "CapEff",
                    "CapBnd",
                    "CapAmb",
                    "NoNewPrivs",
                    "Seccomp:",
                ]
                .iter()
                .any(|p| line.starts_with(p))
                {
                    println!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
        }
        "read" => io_report(std::fs::read(arg(2))),
        "cat" => match std::fs::read_to_string(arg(2)) {
            Ok(text) => print!("{text}"),
            Err(e) => println!("err {}", e.raw_os_error().unwrap_or(-1)),
        },
        "ls" => match std::fs::read_dir(arg(2)) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                println!("{}", names.join(" "));
            }
            Err(e) => println!("err {}", e.raw_os_error().unwrap_or(-1)),
        },
        "write" => io_report(std::fs::write(arg(2), b"x")),
        "mount" => {
            let (src, dst, fs) = (c"none", c"/tmp", c"tmpfs");
            // SAFETY: all pointers are NUL-terminated literals.
            report(
                unsafe {
                    libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null())
                }
                .into(),
            )
        }
        // SAFETY: PTRACE_ATTACH to our parent (init); no memory is passed.
        "ptrace" => report(unsafe { libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0) }),
        // SAFETY: BPF_PROG_LOAD with a null attribute: the call is refused before use.
        "bpf" => report(unsafe { libc::syscall(libc::SYS_bpf, 5, std::ptr::null::<u8>(), 0) }),
        // SAFETY: KEYCTL_GET_KEYRING_ID(-3 session keyring, create) passes no memory.
        "keyctl" => report(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 1) }),
        // SAFETY: creates a socket, or fails; the fd leaks until exit.
        "rawsock" => report(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) }.into(),
        ),
        // SAFETY: as above.
        "packet" => report(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) }.into()),
        // SAFETY: as above.
        "netlink" => report(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) }.into()),
        "io_uring" => {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_setup reads and writes a zeroed params buffer of the kernel's size.
            report(unsafe { libc::syscall(libc::SYS_io_uring_setup, 8, params.as_mut_ptr()) })
        }
        "clone3" => {
            let args = [0u64; 11];
            // SAFETY: a zeroed clone_args would fork; the filter must refuse before that.
            let r = unsafe { libc::syscall(libc::SYS_clone3, args.as_ptr(), 88) };
            if r == 0 {
                std::process::exit(0);
            }
            report(r)
        }
        "thread" => match std::thread::spawn(|| 7).join() {
            Ok(7) => println!("ok"),
            _ => println!("err thread"),
        },
        // SAFETY: unshare passes no memory.
        "unshare" => report(unsafe { libc::unshare(libc::CLONE_NEWUSER) }.into()),
        "connect" => io_report(TcpStream::connect((
            "127.0.0.1",
            arg(2).parse::<u16>().unwrap_or(1),
        ))),
        "connect-to" => io_report(TcpStream::connect((
            arg(2).as_str(),
            arg(3).parse::<u16>().unwrap_or(1),
        ))),
        "serve" => {
            let port = arg(2).parse::<u16>().unwrap_or(9001);
            let r = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                s.write_all(b"hello from inside\n")?;
                let mut reply = String::new();
                s.read_to_string(&mut reply)?;
                Ok(reply)
            });
            match r {
                Ok(reply) => println!("reply {}", reply.trim()),
                Err(e) => println!("err {}", e.raw_os_error().unwrap_or(-1)),
            }
        }
        "forkbomb" | "forkbomb-hold" => {
            let mut made = 0;
            loop {
                // SAFETY: fork in a single-threaded program; the child only sleeps.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    sleep_forever();
                }
                if pid < 0 {
                    println!("contained {} after {made}", errno());
                    if arg(1) == "forkbomb-hold" {
                        sleep_forever();
                    }
                    break;
                }
                made += 1;
                if made > 100_000 {
                    println!("not contained");
                    break;
                }
            }
        }
        "membomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        "filltmp" => {
            let chunk = vec![7u8; 1 << 20];
            let mut f = match std::fs::File::create("/tmp/fill") {
                Ok(f) => f,
                Err(e) => return println!("err {}", e.raw_os_error().unwrap_or(-1)),
            };
            let mut written = 0;
            loop {
                if let Err(e) = f.write_all(&chunk) {
                    println!("err {} after {written} MiB", e.raw_os_error().unwrap_or(-1));
                    break;
                }
                written += 1;
            }
        }
        "background" => {
            // SAFETY: fork in a single-threaded program; the child only sleeps.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                sleep_forever();
            }
            println!("child {pid}");
            sleep_forever();
        }
        "sleep" => sleep_forever(),
        "spin" => {
            // Millions of iterations that the compiler cannot fold away.
            let n: u64 = arg(2).parse().unwrap_or(1) * 1_000_000;
            let mut x = 0u64;
            for i in 0..n {
                x = std::hint::black_box(x.wrapping_add(i));
            }
            println!("spun {}", x % 2);
        }
        other => {
            println!("unknown command {other}");
            std::process::exit(2);
        }
    }
}
