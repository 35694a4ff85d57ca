//! The fault proxy of the Rust tests as a program, for C or Python tests: a
//! TCP proxy on a free loopback port in front of `127.0.0.1:UPSTREAM_PORT`
//! that forwards the first request naming COMMAND (with ARGUMENT among its
//! arguments, if given) to Redis and then loses its reply (`drop`: the
//! connection is closed once Redis has answered) or holds it back
//! (`delay=MS`). Everything else passes through untouched.
//!
//!     fault_proxy UPSTREAM_PORT drop|delay=MS COMMAND [ARGUMENT]
//!
//! Prints `port=<listening port>` on its first line, then `fired=<request>`
//! when the fault has happened; runs until its standard input closes.

#[allow(dead_code)]
#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::io::{Read, Write};
use std::time::Duration;

use proxy::{Fault, FaultProxy, Trigger};

const USAGE: &str = "usage: fault_proxy UPSTREAM_PORT drop|delay=MS COMMAND [ARGUMENT]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(3..=4).contains(&args.len()) {
        eprintln!("{USAGE}");
        std::process::exit(2);
    }
    let Ok(upstream) = args[0].parse::<u16>() else {
        eprintln!("fault_proxy: UPSTREAM_PORT must be a port number, not {:?}\n{USAGE}", args[0]);
        std::process::exit(2);
    };
    let fault = match args[1].as_str() {
        "drop" => Fault::DropReply,
        other => match other.strip_prefix("delay=").and_then(|ms| ms.parse::<u64>().ok()) {
            Some(ms) => Fault::DelayReply(Duration::from_millis(ms)),
            None => {
                eprintln!("fault_proxy: the fault is drop or delay=MS, not {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        },
    };
    let trigger = match args.get(3) {
        Some(argument) => Trigger::command_with(&args[2], argument),
        None => Trigger::command(&args[2]),
    };
    let proxy = FaultProxy::start(upstream);
    proxy.arm(fault, trigger);
    println!("port={}", proxy.port);
    std::io::stdout().flush().unwrap();
    // Report the fault from a watcher while the main thread waits for stdin to close.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            if let Some(request) = proxy.wait_fired(Duration::from_secs(24 * 3600)) {
                println!("fired={request}");
                let _ = std::io::stdout().flush();
            }
        });
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
}
