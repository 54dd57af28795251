//! Password hashing with argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), on the
//! blocking pool and never more at once than there are permits. Request threads only wait.

use std::sync::Arc;

pub use argon2::Params;
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing pool is gone")]
    PoolClosed,
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    params: Params,
    /// A real hash of a random password: verified against when the account does not exist, so
    /// that sign-in takes as long for unknown accounts as for known ones.
    decoy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("permits", &self.permits.available_permits()).finish_non_exhaustive()
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

/// Hashes on the calling thread. For benchmarks and for the pool's own work.
pub fn hash_blocking(params: &Params, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    crate::secret::fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Hash(e.to_string()))?;
    use argon2::PasswordHasher as _;
    argon(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

fn verify_blocking(params: &Params, password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| argon(params).verify_password(password.as_bytes(), &parsed).is_ok())
}

impl PasswordHasher {
    /// `concurrency` hashes may run at once; more wait their turn.
    pub fn new(concurrency: usize, params: Params) -> Result<Self, HashError> {
        let decoy = hash_blocking(&params, &crate::secret::random_token("", 24))?;
        Ok(Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), params, decoy: decoy.into() })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Params) -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::PoolClosed)?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || f(&params)).await.map_err(|_| HashError::PoolClosed)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |p| hash_blocking(p, &password)).await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown account), burns the same time
    /// against the decoy and answers `false`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = self.run(move |p| verify_blocking(p, &password, &hash)).await?;
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
}
