//! [`Json`]: JSON text known to be valid.
//!
//! Job inputs and outputs are JSON by convention. They are checked once,
//! where they enter the host (a submission, an attempt's output), and from
//! then on kept and passed through as text: the store keeps the text, the
//! API writes it into its answers as it is, and nothing parses it again
//! unless it needs to look inside.

use serde_json::value::RawValue;
use std::fmt;

/// The deepest nesting of arrays and objects a submitted input may have:
/// the deepest serde_json parses into a tree under its default recursion
/// limit (128), so every input the host accepts can also be read by the
/// guest SDK and shown by the dashboard, and no parser recurses deeper.
pub const MAX_DEPTH: usize = 127;

/// Valid JSON text (one value, surrounding whitespace removed).
#[derive(Clone)]
pub struct Json(Box<RawValue>);

impl Json {
    /// `null`.
    pub fn null() -> Json {
        Json::parse_str("null").expect("null is JSON")
    }

    /// Checks that `text` is one JSON value.
    pub fn parse_str(text: &str) -> Result<Json, serde_json::Error> {
        RawValue::from_string(text.trim().to_owned()).map(Json)
    }

    /// Checks that `bytes` are UTF-8 text holding one JSON value.
    pub fn parse(bytes: &[u8]) -> Result<Json, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        Json::parse_str(text).map_err(|e| e.to_string())
    }

    /// An attempt's output as JSON: the bytes themselves when they are
    /// JSON, otherwise a JSON string of their (lossy UTF-8) text. A command
    /// module's stdout is often plain text.
    pub fn from_output(bytes: &[u8]) -> Json {
        Json::parse(bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(bytes);
            let quoted = serde_json::to_string(&text).expect("a string serializes");
            Json::parse_str(&quoted).expect("a serialized string is JSON")
        })
    }

    /// A raw value already checked by the JSON parser (a field of a
    /// request body).
    pub fn from_raw(raw: Box<RawValue>) -> Json {
        Json(raw)
    }

    /// Text read back from where the host stored it after checking it.
    /// Checked again (a corrupt row must not reach a client as broken
    /// JSON); text that is not JSON becomes a JSON string.
    pub fn from_stored(text: String) -> Json {
        match RawValue::from_string(text) {
            Ok(raw) => Json(raw),
            Err(_) => Json::from_output(b"<stored value is not valid JSON>"),
        }
    }

    /// How deeply arrays and objects nest in it: 0 for a scalar, 1 for
    /// `[1]`, 2 for `{"a": [1]}`. One pass over the text, no parsing.
    pub fn depth(&self) -> usize {
        let (mut depth, mut deepest) = (0usize, 0usize);
        let (mut in_string, mut escaped) = (false, false);
        for byte in self.as_bytes() {
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        deepest
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.get().as_bytes()
    }

    /// The JSON value, parsed (for callers that look inside).
    ///
    /// # Panics
    ///
    /// If the text nests deeper than serde_json's recursion limit (an
    /// attempt's output may): parse [`as_str`](Self::as_str) instead where
    /// that can happen.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).expect("Json holds valid JSON")
    }

    /// The raw value, for serializing as part of a larger document.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Always false: the shortest JSON value is one character.
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Json {}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({})", self.as_str())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        let depth = |text: &str| Json::parse_str(text).unwrap().depth();
        assert_eq!(depth("7"), 0);
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth(r#"{"a": [1, {"b": []}], "c": {}}"#), 4);
        assert_eq!(depth(r#"["[[{{", "\"[", {}]"#), 2);
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(depth(&deep), 500);
    }

    #[test]
    fn json_is_kept_as_text_and_other_output_becomes_a_string() {
        assert_eq!(Json::from_output(br#" {"a": 1} "#).as_str(), r#"{"a": 1}"#);
        assert_eq!(Json::from_output(b"count 5\n").as_str(), r#""count 5\n""#);
        assert_eq!(Json::from_output(b"").as_str(), r#""""#);
        assert_eq!(Json::from_output(&[0xff, b'x']).as_str(), "\"\u{fffd}x\"");
    }

    #[test]
    fn parse_refuses_what_is_not_one_value() {
        assert!(Json::parse(b"{").is_err());
        assert!(Json::parse(b"1 2").is_err());
        assert!(Json::parse(&[b'"', 0xff, b'"']).is_err());
        assert_eq!(Json::parse(b"\n[1]\n").unwrap().as_str(), "[1]");
    }

    #[test]
    fn a_corrupt_stored_value_is_still_served_as_json() {
        let json = Json::from_stored("{oops".to_owned());
        assert!(json.as_str().starts_with('"'), "{json}");
    }
}
