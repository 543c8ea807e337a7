//! The text of an expression into tokens, each with its byte span.

use std::ops::Range;

use super::ExprError;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

pub(super) fn lex(text: &str) -> Result<Vec<(Token, Range<usize>)>, ExprError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                i += 1;
                if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                    i += 1;
                }
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let number = text[start..i].parse::<f64>().map_err(|_| {
                ExprError::new(start..i, format!("`{}` is not a number", &text[start..i]))
            })?;
            tokens.push((Token::Num(number), start..i));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push((Token::Ident(text[start..i].to_string()), start..i));
            continue;
        }
        if c == b'\'' || c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                i += 1;
            }
            if i >= bytes.len() {
                return Err(ExprError::new(start..i, "unterminated string")
                    .with_help("close the string with the quote it started with"));
            }
            tokens.push((Token::Str(text[start + 1..i].to_string()), start..i + 1));
            i += 1;
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        let op: Option<(&'static str, usize)> = match two {
            "==" => Some(("==", 2)),
            "!=" => Some(("!=", 2)),
            "<=" => Some(("<=", 2)),
            ">=" => Some((">=", 2)),
            "&&" => Some(("and", 2)),
            "||" => Some(("or", 2)),
            _ => match c {
                b'<' => Some(("<", 1)),
                b'>' => Some((">", 1)),
                b'+' => Some(("+", 1)),
                b'-' => Some(("-", 1)),
                b'*' => Some(("*", 1)),
                b'/' => Some(("/", 1)),
                b'%' => Some(("%", 1)),
                b'!' => Some(("not", 1)),
                _ => None,
            },
        };
        if let Some((op, len)) = op {
            tokens.push((Token::Op(op), start..start + len));
            i += len;
            continue;
        }
        match c {
            b'(' => tokens.push((Token::LParen, start..start + 1)),
            b')' => tokens.push((Token::RParen, start..start + 1)),
            b',' => tokens.push((Token::Comma, start..start + 1)),
            b'=' => {
                return Err(ExprError::new(start..start + 1, "unexpected `=`")
                    .with_help("compare with `==`"))
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or('?');
                return Err(ExprError::new(
                    start..start + ch.len_utf8(),
                    format!("unexpected character `{ch}`"),
                ));
            }
        }
        i += 1;
    }
    Ok(tokens)
}
