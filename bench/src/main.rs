//! Measurements the benchmark harness needs beside the server.
//!
//! - `tessera-bench argon2 SECONDS THREADS`: hashes with the exact parameters sign-in uses, on
//!   THREADS threads for SECONDS, and prints hashes per second. The sign-in benchmark is
//!   reported as a fraction of this figure, measured on the same machine in the same run.
//! - `tessera-bench receive PORT`: a webhook receiver on 127.0.0.1:PORT that answers every
//!   `POST` with `204` at once and counts them; `GET` answers the count so far. The delivery
//!   benchmark subscribes it and watches the count.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(1), arg(2), arg(3)) {
        (Some("argon2"), Some(secs), Some(threads)) => match (secs.parse(), threads.parse()) {
            (Ok(secs), Ok(threads)) => {
                argon2(secs, threads);
                std::process::ExitCode::SUCCESS
            }
            _ => usage(),
        },
        (Some("receive"), Some(port), None) => match port.parse() {
            Ok(port) => receive(port),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> std::process::ExitCode {
    eprintln!("usage: tessera-bench argon2 SECONDS THREADS | tessera-bench receive PORT");
    std::process::ExitCode::FAILURE
}

fn argon2(secs: f64, threads: usize) {
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
}

static RECEIVED: AtomicU64 = AtomicU64::new(0);

fn receive(port: u16) -> std::process::ExitCode {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {port}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
    std::process::ExitCode::SUCCESS
}

/// One keep-alive connection: HTTP/1.1 requests with `Content-Length` bodies, one at a time.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let is_post = line.starts_with("POST");
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
        if is_post {
            RECEIVED.fetch_add(1, Ordering::Relaxed);
            out.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?;
        } else {
            let count = RECEIVED.load(Ordering::Relaxed).to_string();
            write!(out, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{count}", count.len())?;
        }
    }
}
