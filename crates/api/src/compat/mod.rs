//! The five foreign contracts, each an adapter over the same service operations as
//! the native API: wire names and shapes in and out, its own error body, nothing else. A rule
//! written here instead of in `core` or `service` is a bug.

pub mod bird;
pub mod jitsudo;
pub mod replyke;
pub mod stack_auth;
pub mod zenml;

use serde_json::{Map, Value};
use tessera_core::{DomainError, FieldError};

use crate::error::ApiError;

/// Where each contract is mounted; configurable so that a client's base URL can be matched.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prefixes {
    pub stack_auth: String,
    pub zenml: String,
    pub bird: String,
    pub jitsudo: String,
    pub replyke: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Self {
            stack_auth: "/compat/stack-auth".into(),
            zenml: "/compat/zenml".into(),
            bird: "/compat/bird".into(),
            jitsudo: "/compat/jitsudo".into(),
            replyke: "/compat/replyke".into(),
        }
    }
}

/// A contract's writable fields: (wire name, native name).
pub type FieldMap = &'static [(&'static str, &'static str)];

/// Renames a contract's body to native names. Fields the contract does not document are
/// refused by their wire name (no mass assignment), all of them at once.
pub fn to_native(body: Map<String, Value>, fields: FieldMap) -> Result<Map<String, Value>, DomainError> {
    let mut out = Map::new();
    let mut unknown = Vec::new();
    for (k, v) in body {
        match fields.iter().find(|(wire, _)| *wire == k) {
            Some((_, native)) => {
                out.insert((*native).to_owned(), v);
            }
            None => unknown.push(FieldError::new(k, "unknown_field", "this field cannot be written here")),
        }
    }
    if unknown.is_empty() { Ok(out) } else { Err(DomainError::Validation(unknown)) }
}

/// Renames the fields named in an error back to the contract's wire names.
pub fn to_wire(e: ApiError, fields: FieldMap) -> ApiError {
    let rename = |fs: Vec<FieldError>| -> Vec<FieldError> {
        fs.into_iter()
            .map(|mut f| {
                let (head, rest) = f.field.split_once('.').map_or((f.field.as_str(), ""), |(h, r)| (h, r));
                if let Some((wire, _)) = fields.iter().find(|(_, native)| *native == head) {
                    f.field = if rest.is_empty() { (*wire).to_owned() } else { format!("{wire}.{rest}") };
                }
                f
            })
            .collect()
    };
    match e {
        ApiError::Domain(DomainError::Validation(fs)) => ApiError::Domain(DomainError::Validation(rename(fs))),
        ApiError::Domain(DomainError::Forbidden { reason, fields: fs, notices }) => {
            ApiError::Domain(DomainError::Forbidden { reason, fields: rename(fs), notices })
        }
        ApiError::Domain(DomainError::Conflict { field }) => {
            let wire = fields.iter().find(|(_, n)| *n == field).map_or(field, |(w, _)| *w);
            ApiError::Domain(DomainError::Conflict { field: wire })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::fields;

    /// Each contract maps its wire names onto fields the field table declares as writable: a
    /// contract cannot name a field the core does not know, or one no update may write.
    #[test]
    fn every_contract_maps_onto_declared_writable_fields() {
        let maps = [
            ("bird", super::bird::FIELDS),
            ("jitsudo", super::jitsudo::FIELDS),
            ("replyke", super::replyke::FIELDS),
            ("stack-auth", super::stack_auth::FIELDS),
            ("zenml", super::zenml::FIELDS),
        ];
        for (contract, map) in maps {
            for (wire, native) in map {
                let field = fields::field(native).unwrap_or_else(|| panic!("{contract}: {wire} maps to no field"));
                assert!(field.is_writable(), "{contract}: {wire} maps to the read-only {native}");
            }
        }
    }
}
