//! A real SMTP server on loopback for the mail tests: it speaks enough of RFC 5321 (greeting,
//! EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) to take what Tessera
//! sends, and keeps each message for the test to read. It can be stopped and started again on
//! the same port, to play a mail server that is down for a while.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message, headers and body, as sent.
    pub data: String,
}

pub struct SmtpReceiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    server: Option<JoinHandle<()>>,
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Listens on `addr` (a port it had before, to come back after `stop`).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("the SMTP receiver binds");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let _ = session(socket, kept).await;
                });
            }
        });
        Self { addr, received, server: Some(server) }
    }

    /// `smtp://` this server, for `mail.transport`.
    pub fn transport(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Stops listening: connections are refused until a new receiver starts on the port.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The messages to `to`, once there are `n` of them (or panics after a while).
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let found: Vec<Received> = self.all().into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages to {to}, have {:?}", self.all().iter().map(|m| &m.to).collect::<Vec<_>>());
    }
}

async fn session(socket: tokio::net::TcpStream, kept: Arc<Mutex<Vec<Received>>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 receiver.test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 receiver.test\r\n"
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = address(&command[command.len() - rest.len()..]);
            b"250 OK\r\n"
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:") {
            to.push(address(&command[command.len() - rest.len()..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(l));
                data.push_str("\r\n");
            }
            kept.lock().unwrap().push(Received { from: std::mem::take(&mut from), to: std::mem::take(&mut to), data });
            b"250 Queued\r\n"
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(answer).await?;
    }
}

fn address(s: &str) -> String {
    s.trim().trim_start_matches('<').split('>').next().unwrap_or("").to_owned()
}

impl Received {
    /// The header `name`'s value (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = &mut value {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }

    /// The decoded body of the part of `content_type` (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> String {
        for part in self.data.split("\r\n--") {
            let Some((head, body)) = part.split_once("\r\n\r\n") else { continue };
            let head_lower = head.to_ascii_lowercase();
            if !head_lower.contains(&format!("content-type: {content_type}")) {
                continue;
            }
            if head_lower.contains("content-transfer-encoding: quoted-printable") {
                return quoted_printable(body);
            }
            if head_lower.contains("content-transfer-encoding: base64") {
                let joined: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD.decode(joined).unwrap_or_default();
                return String::from_utf8_lossy(&bytes).into_owned();
            }
            return body.to_owned();
        }
        panic!("no {content_type} part in {}", self.data)
    }

    /// The link in the text part that carries a `token`, and the token.
    pub fn link(&self) -> (String, String) {
        let text = self.part("text/plain");
        let link = text
            .split_whitespace()
            .find(|w| w.contains("?token="))
            .unwrap_or_else(|| panic!("no link with a token in {text}"))
            .to_owned();
        let url = url::Url::parse(&link).unwrap();
        let token = url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()).unwrap();
        (link, token)
    }
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
