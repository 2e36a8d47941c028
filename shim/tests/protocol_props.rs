//! Properties of the frame parser, on random input: it never panics, and
//! every frame is a request or a `BAD_REQUEST` error that keeps the frame's
//! `ref`. (`fuzz/` holds a coverage-guided fuzz target for the same code.)

use proptest::prelude::*;
use serde_json::{Map, Value};
use violet_shim::protocol::{detail_fields, parse, ErrorCode, Request};

/// The kinds the shim knows, and a few it does not.
const KINDS: &[&str] = &[
    "room-created",
    "room-joined",
    "room-left",
    "top",
    "room",
    "members",
    "room-message",
    "watch-top",
    "unwatch-top",
    "welcome",
    "error",
    "",
    "ROOM-CREATED",
];

/// Field names the requests use, and a few they do not.
const FIELDS: &[&str] = &[
    "details",
    "room_id",
    "count",
    "offset",
    "data",
    "socket_id",
    "watchers",
    "ref",
    "kind",
    "x",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(FIELDS).prop_map(str::to_owned),
                    ".{0,8}"
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like requests: a kind (usually a string) and fields of
/// the right names with values of any type.
fn request_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        4 => prop::sample::select(KINDS).prop_map(Value::from),
        1 => json(),
    ];
    let fields = prop::collection::btree_map(prop::sample::select(FIELDS), json(), 0..6);
    (kind, fields).prop_map(|(kind, fields)| {
        let mut object: Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        object.insert("kind".to_owned(), kind);
        Value::Object(object)
    })
}

/// Parses `text` and checks what any frame must give.
fn check(text: &str) -> Result<(), TestCaseError> {
    let incoming = parse(text);
    match incoming.request {
        Ok(Request::RoomCreated { details, .. }) => match detail_fields(&details) {
            Ok(fields) => {
                prop_assert!(fields.len() <= details.len());
                prop_assert!(fields.iter().all(|(name, _)| name != "watchers"));
            }
            Err(error) => prop_assert_eq!(error.code, ErrorCode::BadRequest),
        },
        Ok(_) => {}
        Err(error) => {
            prop_assert_eq!(error.code, ErrorCode::BadRequest);
            prop_assert!(!error.message.is_empty());
        }
    }
    // The ref comes back whenever the frame is an object that has one.
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) {
        prop_assert_eq!(incoming.reference.as_ref(), object.get("ref"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn any_json(value in json()) {
        check(&value.to_string())?;
    }

    #[test]
    fn request_shaped_json(value in request_like(), reference in json()) {
        check(&value.to_string())?;
        let mut with_ref = value;
        with_ref["ref"] = reference;
        check(&with_ref.to_string())?;
    }

    #[test]
    fn cut_request_shaped_json(value in request_like(), cut in any::<prop::sample::Index>()) {
        let text = value.to_string();
        let end = cut.index(text.len() + 1);
        if let Some(prefix) = text.get(..end) {
            check(prefix)?;
        }
    }
}
