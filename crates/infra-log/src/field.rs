//! Typed key-value fields.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// A field's value: kept typed until the worker writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// Text.
    Str(Cow<'static, str>),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// An error, as its message and the messages of its sources, joined by ": ".
    Error(String),
}

impl FieldValue {
    /// An error with its chain of sources.
    pub fn error(error: &(dyn std::error::Error + 'static)) -> FieldValue {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        FieldValue::Error(text)
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Str(v) => f.write_str(v),
            FieldValue::I64(v) => write!(f, "{v}"),
            FieldValue::U64(v) => write!(f, "{v}"),
            FieldValue::F64(v) => write!(f, "{v}"),
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::Error(v) => f.write_str(v),
        }
    }
}

macro_rules! from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for FieldValue {
            fn from(v: $t) -> Self {
                FieldValue::$variant(v $(as $cast)?)
            }
        }
    )*};
}

from!(i64 => I64, i32 => I64 as i64, i16 => I64 as i64, i8 => I64 as i64, isize => I64 as i64,
    u64 => U64, u32 => U64 as u64, u16 => U64 as u64, u8 => U64 as u64, usize => U64 as u64,
    f64 => F64, f32 => F64 as f64, bool => Bool);

impl From<&'static str> for FieldValue {
    fn from(v: &'static str) -> Self {
        FieldValue::Str(Cow::Borrowed(v))
    }
}

impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::Str(Cow::Owned(v))
    }
}

impl From<Cow<'static, str>> for FieldValue {
    fn from(v: Cow<'static, str>) -> Self {
        FieldValue::Str(v)
    }
}

/// A named value on an entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// The name.
    pub key: Cow<'static, str>,
    /// The value.
    pub value: FieldValue,
}

impl Field {
    /// A field.
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<FieldValue>) -> Field {
        Field { key: key.into(), value: value.into() }
    }
}
