//! `tessera-bench argon2 SECONDS THREADS`: hashes with the exact parameters sign-in uses, on
//! THREADS threads for SECONDS, and prints hashes per second. The sign-in benchmark is reported
//! as a fraction of this figure, measured on the same machine in the same run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some("argon2"), Some(secs), Some(threads)) = (
        args.get(1).map(String::as_str),
        args.get(2).and_then(|s| s.parse::<f64>().ok()),
        args.get(3).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: tessera-bench argon2 SECONDS THREADS");
        return std::process::ExitCode::FAILURE;
    };
    let params = tessera_auth::password::owasp_params();
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                // The server's code exactly: one worker per thread, its memory reused.
                let mut worker = tessera_auth::password::Worker::new(params.clone());
                while !stop.load(Ordering::Relaxed) {
                    if worker.hash("correct horse battery staple").is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    println!("{:.1}", done.load(Ordering::Relaxed) as f64 / elapsed);
    std::process::ExitCode::SUCCESS
}
