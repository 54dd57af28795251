//! Avatar images, stored content-addressed: written with the user write that refers to them,
//! and deleted once no user does.

use chrono::{DateTime, Utc};

use crate::ImageBlob;
use crate::Result;
use crate::db::Db;
use crate::sql::{Param, Step};

// DO UPDATE (not DO NOTHING) touches the row, so an image re-used here is both locked against
// and fresh for a concurrent garbage collection.
const INSERT_IMAGE_SQL: &str = "INSERT INTO images (hash, content_type, bytes, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (hash) DO UPDATE SET created_at = excluded.created_at";

/// The image's INSERT, as a step of the user write that refers to it.
pub(crate) fn insert_step(img: ImageBlob<'_>, now: DateTime<Utc>) -> Step {
    let params =
        vec![Param::text(img.hash), Param::text(img.content_type), Param::Bytes(img.bytes.to_vec()), Param::time(now)];
    Step::execute(INSERT_IMAGE_SQL, params)
}

pub(crate) async fn find(db: &Db, hash: &str) -> Result<Option<(String, Vec<u8>)>> {
    let sql = "SELECT content_type, bytes FROM images WHERE hash = $1";
    db.fetch_optional(sql, &[Param::text(hash)], |r| Ok((r.text("content_type")?, r.bytes("bytes")?))).await
}

pub(crate) async fn delete_unreferenced(db: &Db) -> Result<u64> {
    db.execute("DELETE FROM images WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_hash = images.hash)", &[])
        .await
}
