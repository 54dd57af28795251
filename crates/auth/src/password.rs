//! Password hashing with argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), on a
//! fixed pool of dedicated threads. Request threads only wait.

use std::sync::Arc;

pub use argon2::Params;
use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Version};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing pool is gone")]
    PoolClosed,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// A fixed set of dedicated hashing threads behind a bounded queue. Dedicated threads (rather
/// than tokio's elastic blocking pool) bound memory as well as CPU: each argon2id hash needs
/// 19 MiB, and each thread reuses its own allocation instead of spreading them over many
/// threads' heaps.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: tokio::sync::mpsc::Sender<Job>,
    threads: usize,
    /// A real hash of a random password: verified against when the account does not exist, so
    /// that sign-in takes as long for unknown accounts as for known ones.
    decoy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("threads", &self.threads).finish_non_exhaustive()
    }
}

/// OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
pub fn owasp_params() -> Params {
    #[allow(clippy::expect_used, reason = "constant parameters, checked by the unit tests")]
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// The largest memory cost a stored hash may ask for (256 MiB), so that a strange hash cannot
/// make a hashing thread allocate without bound.
const MAX_BLOCKS: usize = 256 * 1024;

/// A hashing thread's state: the parameters and argon2id's working memory (19 MiB at OWASP's
/// parameters), allocated once and reused by every hash and verification. Allocating it per
/// hash made glibc keep the freed buffers (its mmap threshold adapts upwards after the first
/// free), and peak RSS grew past 300 MB after a few dozen sign-ins.
pub struct Worker {
    params: Params,
    memory: Vec<Block>,
}

impl Worker {
    pub fn new(params: Params) -> Self {
        Self { params, memory: Vec::new() }
    }

    fn compute(&mut self, params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), HashError> {
        let need = params.block_count();
        if need > MAX_BLOCKS {
            return Err(HashError::Hash("memory cost too high".into()));
        }
        if self.memory.len() != need {
            self.memory = vec![Block::default(); need];
        }
        // Every block is written before it is read on the first pass, so the buffer needs no
        // clearing between uses.
        argon(params)
            .hash_password_into_with_memory(password, salt, out, &mut self.memory[..])
            .map_err(|e| HashError::Hash(e.to_string()))
    }

    /// A new argon2id hash of `password` in PHC string form, with a random 16-byte salt.
    pub fn hash(&mut self, password: &str) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        crate::secret::fill_random(&mut salt);
        let mut out = [0u8; 32];
        let params = self.params.clone();
        self.compute(&params, password.as_bytes(), &salt, &mut out)?;
        Ok(phc(&params, &salt, &out))
    }

    /// Whether `password` matches the PHC string `hash` (argon2id, version 19, its own
    /// parameters and salt). Anything malformed is simply no match.
    pub fn verify(&mut self, password: &str, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version.is_some_and(|v| v != 0x13) {
            return false;
        }
        let (Ok(params), Some(expected), Some(salt)) = (Params::try_from(&parsed), parsed.hash, parsed.salt) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
        let expected = expected.as_bytes();
        let mut out = vec![0u8; expected.len()];
        self.compute(&params, password.as_bytes(), salt, &mut out).is_ok()
            && out.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The PHC string of an argon2id hash.
fn phc(params: &Params, salt: &[u8], output: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(output)
    )
}

/// Hashes on the calling thread, allocating its own working memory. For benchmarks and tests.
pub fn hash_blocking(params: &Params, password: &str) -> Result<String, HashError> {
    Worker::new(params.clone()).hash(password)
}

/// A well-formed argon2id hash with the configured parameters, a random salt and a random
/// output: verifying against it costs exactly a real verification and never succeeds. Made
/// without hashing, so start-up does not pay for an argon2id run.
fn decoy_hash(params: &Params) -> String {
    let (mut salt, mut output) = ([0u8; 16], [0u8; 32]);
    crate::secret::fill_random(&mut salt);
    crate::secret::fill_random(&mut output);
    phc(params, &salt, &output)
}

/// How much less CPU a busy hashing thread gets than a request thread when both want it
/// (Linux nice 5: about a third of the weight). Alone, hashing still uses every idle cycle, so
/// sign-in throughput is unchanged; in a sign-in storm, `GET /me` is served first. Nice 10 was
/// tried (BENCHMARKS.md): `GET /me`'s p99 during a storm moved within the machine's noise
/// (9.0–10.6 ms against 8.7–10.5 ms over three runs each), while sign-ins fell from 33 to 27/s.
const HASH_THREAD_NICE: i32 = 5;

/// Lowers the calling thread's priority by `HASH_THREAD_NICE` (on Linux the nice value is per
/// thread). Failing to is harmless: hashing then competes as an equal.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        let current = rustix::process::getpriority_process(me).unwrap_or(0);
        let _ = rustix::process::setpriority_process(me, (current + HASH_THREAD_NICE).min(19));
    }
}

/// Requests waiting for a hashing thread beyond this many wait to enter the queue.
const QUEUE: usize = 1024;

impl PasswordHasher {
    /// Starts `threads` hashing threads. They end when the last clone of the hasher is dropped.
    pub fn new(threads: usize, params: Params) -> Result<Self, HashError> {
        let decoy = decoy_hash(&params);
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let threads = threads.max(1);
        for i in 0..threads {
            let (rx, mut worker) = (Arc::clone(&rx), Worker::new(params.clone()));
            std::thread::Builder::new()
                .name(format!("tessera-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job, never while hashing.
                        let job = match rx.lock() {
                            Ok(mut guard) => guard.blocking_recv(),
                            Err(_) => None,
                        };
                        match job {
                            Some(job) => job(&mut worker),
                            None => break,
                        }
                    }
                })
                .map_err(|e| HashError::Hash(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Self { jobs: tx, threads, decoy: decoy.into() })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> T + Send + 'static) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |worker| {
            let _ = done.send(f(worker));
        });
        self.jobs.send(job).await.map_err(|_| HashError::PoolClosed)?;
        result.await.map_err(|_| HashError::PoolClosed)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |w| w.hash(&password)).await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown account), burns the same time
    /// against the decoy and answers `false`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = self.run(move |w| w.verify(&password, &hash)).await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = PasswordHasher::new(2, owasp_params()).unwrap();
        let h = hasher.hash("correct horse battery staple".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(hasher.verify("correct horse battery staple".into(), Some(h.clone())).await.unwrap());
        assert!(!hasher.verify("wrong".into(), Some(h)).await.unwrap());
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_verify_and_ours_verify_there() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
        let params = owasp_params();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = argon(&params).hash_password(b"hunter22hunter22", &salt).unwrap().to_string();
        let mut worker = Worker::new(params.clone());
        assert!(worker.verify("hunter22hunter22", &theirs));
        assert!(!worker.verify("hunter22hunter23", &theirs));
        let ours = worker.hash("hunter22hunter22").unwrap();
        assert!(argon(&params).verify_password(b"hunter22hunter22", &PasswordHash::new(&ours).unwrap()).is_ok());
        // The reused memory gives the same answers as fresh memory, hash after hash.
        assert!(worker.verify("hunter22hunter22", &ours) && worker.verify("hunter22hunter22", &theirs));
        // Other algorithms, versions, and absurd memory costs are no match.
        assert!(!worker.verify("x", &theirs.replace("argon2id", "argon2i")));
        assert!(!worker.verify("x", &theirs.replace("m=19456", "m=4000000")));
        assert!(!worker.verify("x", "not a hash"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority_than_request_threads() {
        let hasher = PasswordHasher::new(1, owasp_params()).unwrap();
        let nice = |_: &mut Worker| rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let own = nice(&mut Worker::new(owasp_params()));
        assert_eq!(hasher.run(nice).await.unwrap(), (own + HASH_THREAD_NICE).min(19));
    }

    #[test]
    fn the_decoy_is_a_well_formed_hash_with_the_same_parameters_that_nothing_matches() {
        let params = owasp_params();
        let decoy = decoy_hash(&params);
        let parsed = PasswordHash::new(&decoy).expect("the decoy parses as a PHC string");
        let real = hash_blocking(&params, "x").unwrap();
        let real = PasswordHash::new(&real).unwrap();
        assert_eq!((parsed.algorithm, parsed.version), (real.algorithm, real.version));
        assert_eq!(parsed.params, real.params, "the same cost as a real verification");
        assert_eq!(parsed.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        let mut worker = Worker::new(params);
        assert!(!worker.verify("", &decoy));
        assert!(!worker.verify("correct horse battery staple", &decoy));
    }
}
