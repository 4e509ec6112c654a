//! Request bodies as JSON Schema reads them.
//!
//! Two places where serde's defaults and the OpenAPI document disagree:
//! - JSON Schema's `integer` is any number with no fractional part, so
//!   `172903299.0` is an integer to a client that follows the document;
//!   serde refuses it. Integer fields are [`Whole`]: either form, a
//!   fraction or a value out of range refused naming the range.
//! - serde's derived `Deserialize` takes a struct from a JSON array as well
//!   as an object (`"limits": []`); the document says object. The
//!   [`object!`] macro writes a `Deserialize` that takes an object only,
//!   refuses unknown and repeated fields, and names a missing one.

use serde::Deserialize;
use serde::de::{Deserializer, Error};
use std::fmt;

/// An optional whole number of type `T` (`u8`, `u32`, `u64`), given as a
/// JSON integer or as a number with no fractional part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Whole<T>(pub Option<T>);

impl<'de, T: TryFrom<u64> + Bounded> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
            return Ok(Whole(None));
        };
        let whole = match (number.as_u64(), number.as_f64()) {
            (Some(value), _) => Some(value),
            (None, Some(value))
                if value.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&value) =>
            {
                Some(value as u64)
            }
            _ => None,
        };
        let out_of_range = || {
            D::Error::custom(format!(
                "invalid value: {number}, expected a whole number from 0 to {}",
                T::MAX
            ))
        };
        let whole = whole.ok_or_else(out_of_range)?;
        T::try_from(whole)
            .map(|value| Whole(Some(value)))
            .map_err(|_| out_of_range())
    }
}

/// The largest value of an unsigned integer type, for messages.
pub(super) trait Bounded {
    /// The type's maximum.
    const MAX: u64;
}

impl Bounded for u8 {
    const MAX: u64 = u8::MAX as u64;
}

impl Bounded for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Bounded for u64 {
    const MAX: u64 = u64::MAX;
}

/// What an object's visitor expects, for serde's messages.
pub(super) struct Expecting(pub &'static str);

impl fmt::Display for Expecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object ({})", self.0)
    }
}

/// `impl Deserialize` for a struct whose fields all implement `Default`
/// and `Deserialize`, from a JSON object only: unknown and repeated fields
/// are refused, and each listed `required` field must be present.
macro_rules! object {
    ($ty:ident { $($field:ident),* $(,)? } required { $($required:ident),* }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                const FIELDS: &[&str] = &[$(stringify!($field)),*];
                struct Fields;
                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = $ty;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{}", $crate::api::body::Expecting(stringify!($ty)))
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        use serde::de::Error;
                        let mut value = $ty::default();
                        let mut seen = [false; FIELDS.len()];
                        while let Some(key) = map.next_key::<String>()? {
                            let Some(index) = FIELDS.iter().position(|f| *f == key) else {
                                return Err(A::Error::unknown_field(&key, FIELDS));
                            };
                            if std::mem::replace(&mut seen[index], true) {
                                return Err(A::Error::duplicate_field(FIELDS[index]));
                            }
                            match key.as_str() {
                                $(stringify!($field) => value.$field = map.next_value()?,)*
                                _ => unreachable!("a listed field"),
                            }
                        }
                        $(
                            let index = FIELDS
                                .iter()
                                .position(|f| *f == stringify!($required))
                                .expect("a required field is a field");
                            if !seen[index] {
                                return Err(A::Error::missing_field(stringify!($required)));
                            }
                        )*
                        Ok(value)
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
    };
}

pub(super) use object;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Inner {
        n: Whole<u32>,
    }
    object!(Inner { n } required {});

    #[derive(Debug, Default, PartialEq)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }
    object!(Outer { name, inner } required { name });

    fn whole(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Inner>(json)
            .map(|inner| inner.n.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_in_either_form_are_taken_and_others_named() {
        assert_eq!(whole(r#"{"n": 7}"#), Ok(Some(7)));
        assert_eq!(whole(r#"{"n": 172903299.0}"#), Ok(Some(172_903_299)));
        assert_eq!(whole(r#"{"n": 1e3}"#), Ok(Some(1_000)));
        assert_eq!(whole(r#"{"n": null}"#), Ok(None));
        assert_eq!(whole("{}"), Ok(None));
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
        ] {
            let error = whole(bad).unwrap_err();
            assert!(
                error.contains("expected a whole number from 0 to 4294967295"),
                "{bad}: {error}"
            );
        }
        assert!(whole(r#"{"n": "7"}"#).is_err(), "a string is not a number");
    }

    #[test]
    fn objects_only_with_known_fields_once_and_the_required_ones() {
        let outer: Outer = serde_json::from_str(r#"{"name": "a", "inner": {"n": 2}}"#).unwrap();
        assert_eq!(outer.inner.unwrap().n, Whole(Some(2)));
        let error = |json: &str| serde_json::from_str::<Outer>(json).unwrap_err().to_string();
        assert!(error(r#"["a"]"#).contains("expected a JSON object (Outer)"));
        assert!(error(r#"{"name": "a", "inner": []}"#).contains("expected a JSON object (Inner)"));
        assert!(error(r#"{"name": "a", "colour": 1}"#).contains("unknown field `colour`"));
        assert!(error(r#"{"name": "a", "name": "b"}"#).contains("duplicate field `name`"));
        assert!(error(r#"{"inner": null}"#).contains("missing field `name`"));
        let outer: Outer = serde_json::from_str(r#"{"name": "a", "inner": null}"#).unwrap();
        assert_eq!(outer.inner, None);
    }
}
