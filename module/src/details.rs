//! Room details: the fields of a room's hash, as callers may set them.
//!
//! Three names have meaning to Violet and are matched in any case: `visibility`
//! (`public` or `private`, any case, stored lowercase), `capacity` (a positive
//! integer, the most viewers the room admits) and `owner` (the creating socket,
//! set by Violet only). `viewers` and the original page's `watchers` are refused:
//! the viewer count is always the live size of the member set. Every other field
//! is free-form (title, topic, thumbnail, ...).

use crate::error::{err_invalid, err_too_many_fields, quoted, Result};

pub use violet_contract::limits::{MAX_FIELDS, MAX_NAME_BYTES, MAX_VALUE_BYTES};

/// The field holding the creating socket.
pub const OWNER: &str = "owner";
/// The field holding `public` or `private`.
pub const VISIBILITY: &str = "visibility";
/// The field holding the optional capacity.
pub const CAPACITY: &str = "capacity";

/// Names that only Violet may set.
const RESERVED: [&str; 3] = [OWNER, "viewers", "watchers"];

/// Whether a room is listed in the namespace's ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    /// # Errors
    /// `ERR` for anything but `public` or `private` (in any case).
    pub fn parse(value: &str) -> Result<Self> {
        if value.eq_ignore_ascii_case("public") {
            Ok(Self::Public)
        } else if value.eq_ignore_ascii_case("private") {
            Ok(Self::Private)
        } else {
            Err(err_invalid(format!(
                "invalid visibility {}: it must be 'public' or 'private'",
                quoted(value)
            )))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// Fields a caller asked to set, validated and normalised; in the caller's order.
///
/// A room holds at most [`MAX_FIELDS`] fields besides `owner`: `visibility`
/// (always stored, `public` unless given), `capacity` when given, and the
/// free-form ones. `VIOLET.CREATE` and `VIOLET.UPDATE` apply that one rule to
/// what the room would hold ([`crate::rooms`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    fields: Vec<(String, String)>,
}

impl Details {
    /// Validates `field value` pairs as given to `VIOLET.CREATE` or `VIOLET.UPDATE`.
    ///
    /// # Errors
    /// `ERR` naming the first field that is reserved, repeated, too long or
    /// malformed, or when there are more than [`MAX_FIELDS`] fields.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            let (name, value) = normalise(name, value)?;
            if fields.iter().any(|(seen, _)| *seen == name) {
                return Err(err_invalid(format!(
                    "field {} is given twice",
                    quoted(&name)
                )));
            }
            fields.push((name, value));
            if fields.len() > MAX_FIELDS {
                return Err(err_too_many_fields());
            }
        }
        Ok(Self { fields })
    }

    /// The validated fields, names of Violet's own fields in lowercase.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The visibility asked for, if any.
    pub fn visibility(&self) -> Option<Visibility> {
        self.get(VISIBILITY)
            .map(|v| Visibility::parse(v).expect("visibility was validated by Details::parse"))
    }

    /// Sets a field unless the caller gave it.
    pub fn set_default(&mut self, name: &str, value: &str) {
        if self.get(name).is_none() {
            self.fields.push((name.to_owned(), value.to_owned()));
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a stored or requested capacity.
///
/// # Errors
/// `ERR` unless the value is a positive integer.
pub fn parse_capacity(value: &str) -> Result<u64> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(err_invalid(format!(
            "invalid capacity {}: it must be a positive integer",
            quoted(value)
        ))),
    }
}

fn normalise(name: &str, value: &str) -> Result<(String, String)> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(err_invalid(format!(
            "invalid field name {}: it must be 1-{MAX_NAME_BYTES} bytes",
            quoted(name)
        )));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(err_invalid(format!(
            "field {} is longer than {MAX_VALUE_BYTES} bytes",
            quoted(name)
        )));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) {
        return Err(err_invalid(format!(
            "field {} is set by Violet and cannot be given",
            quoted(name)
        )));
    }
    match lower.as_str() {
        VISIBILITY => Ok((lower, Visibility::parse(value)?.as_str().to_owned())),
        CAPACITY => Ok((lower, parse_capacity(value)?.to_string())),
        _ => Ok((name.to_owned(), value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_violets_own_fields() {
        let d = Details::parse([
            ("Visibility", "Public"),
            ("CAPACITY", "0012"),
            ("Title", "x"),
        ])
        .unwrap();
        assert_eq!(
            d.fields(),
            &[
                ("visibility".into(), "public".into()),
                ("capacity".into(), "12".into()),
                ("Title".into(), "x".into())
            ]
        );
        assert_eq!(d.visibility(), Some(Visibility::Public));
    }

    #[test]
    fn refuses_reserved_and_malformed_fields() {
        for (name, value) in [
            ("owner", "me"),
            ("Viewers", "3"),
            ("watchers", "2"),
            ("visibility", "secret"),
            ("capacity", "0"),
            ("capacity", "-1"),
            ("capacity", "+3"),
            ("capacity", "lots"),
            ("", "x"),
        ] {
            let err = Details::parse([(name, value)]).unwrap_err();
            assert_eq!(err.code(), "ERR", "{name}={value}");
        }
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(Details::parse([(long_name.as_str(), "x")]).is_err());
        let long_value = "v".repeat(MAX_VALUE_BYTES + 1);
        assert!(Details::parse([("title", long_value.as_str())]).is_err());
        assert!(Details::parse([("title", "a"), ("title", "b")]).is_err());
        assert!(Details::parse([("visibility", "public"), ("Visibility", "private")]).is_err());
    }

    #[test]
    fn at_most_32_fields() {
        let names: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("f{i}")).collect();
        let ok = names[..MAX_FIELDS].iter().map(|n| (n.as_str(), "v"));
        assert!(Details::parse(ok).is_ok());
        let too_many = names.iter().map(|n| (n.as_str(), "v"));
        assert!(Details::parse(too_many).is_err());
    }

    #[test]
    fn defaults_do_not_override() {
        let mut d = Details::parse([("visibility", "private")]).unwrap();
        d.set_default(VISIBILITY, "public");
        assert_eq!(d.visibility(), Some(Visibility::Private));
        let mut d = Details::default();
        d.set_default(VISIBILITY, "public");
        assert_eq!(d.visibility(), Some(Visibility::Public));
    }
}
