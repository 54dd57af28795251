-- One-time TOTP recovery codes, stored as SHA-256 (random and high-entropy), each used once.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, hash)
);
