//! The dynamic value an expression sees when it reads an event field.

use std::fmt;

/// A field value, borrowed from the event. `Null` is a missing optional field and, in
/// expressions, a statistic whose minimum-sample guard is not met (SQL-style null logic).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Num(f64),
    Bool(bool),
    Str(&'a str),
}

/// The static type of a field or expression, checked when a rule is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Number,
    Bool,
    Text,
    /// Only the literal `null`: compatible with every type.
    Null,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Number => "number",
            ValueType::Bool => "boolean",
            ValueType::Text => "string",
            ValueType::Null => "null",
        })
    }
}

impl Value<'_> {
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Num(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Str(s) => serde_json::Value::String((*s).to_string()),
        }
    }
}

/// How a Rust field type appears to expressions.
pub trait FieldValue {
    const TYPE: ValueType;
    fn value(&self) -> Value<'_>;
}

impl FieldValue for f64 {
    const TYPE: ValueType = ValueType::Number;
    fn value(&self) -> Value<'_> {
        Value::Num(*self)
    }
}

impl FieldValue for u32 {
    const TYPE: ValueType = ValueType::Number;
    fn value(&self) -> Value<'_> {
        Value::Num(f64::from(*self))
    }
}

impl FieldValue for bool {
    const TYPE: ValueType = ValueType::Bool;
    fn value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}

impl FieldValue for String {
    const TYPE: ValueType = ValueType::Text;
    fn value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl FieldValue for super::EventTime {
    const TYPE: ValueType = ValueType::Number;
    fn value(&self) -> Value<'_> {
        // Times are compared as numbers of milliseconds in expressions.
        Value::Num(self.millis() as f64)
    }
}

impl<T: FieldValue> FieldValue for Option<T> {
    const TYPE: ValueType = T::TYPE;
    fn value(&self) -> Value<'_> {
        match self {
            Some(v) => v.value(),
            None => Value::Null,
        }
    }
}
