//! The shim's frame parser on arbitrary bytes: whatever a client sends as a
//! text frame, `protocol::parse` (and `detail_fields` for the details of a
//! `room-created`) must not panic, and what is not a request must be a
//! `BAD_REQUEST` error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use violet_shim::protocol::{detail_fields, parse, ErrorCode, Request};

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8: tungstenite refuses others before the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let incoming = parse(text);
    match incoming.request {
        Ok(Request::RoomCreated { details, .. }) => match detail_fields(&details) {
            Ok(fields) => assert!(fields.iter().all(|(name, _)| name != "watchers")),
            Err(error) => assert_eq!(error.code, ErrorCode::BadRequest),
        },
        Ok(_) => {}
        Err(error) => assert_eq!(error.code, ErrorCode::BadRequest),
    }
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text) {
        assert_eq!(incoming.reference.as_ref(), object.get("ref"));
    }
});
