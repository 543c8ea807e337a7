//! The expression language of conditions, `let` bindings, statistic inputs and filters.
//!
//! Small on purpose: numbers, strings, `true`/`false`/`null`, field and statistic names,
//! arithmetic, comparisons, `and`/`or`/`not`, and a handful of functions (`ln`, `abs`, …).
//! Nulls follow SQL: a missing field or an unguarded statistic is `null`, arithmetic and
//! comparisons with `null` give `null`, and a condition fires only when it is `true`. That is
//! what makes "a rule whose guard is not met does not evaluate" fall out of the language.
//!
//! Written by hand rather than with a parser crate: the grammar is a dozen lines, and the
//! errors must carry byte spans that map back into the TOML file.

use std::fmt;
use std::ops::Range;

use crate::event::{Value, ValueType};

/// A problem in an expression, with its byte span inside the expression text.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl ExprError {
    fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        ExprError {
            span,
            message: message.into(),
            help: None,
        }
    }

    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(text: &str) -> Result<Vec<(Token, Range<usize>)>, ExprError> {
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

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    fn from_token(op: &str) -> Option<(BinOp, u8)> {
        Some(match op {
            "or" => (BinOp::Or, 1),
            "and" => (BinOp::And, 2),
            "==" => (BinOp::Eq, 4),
            "!=" => (BinOp::Ne, 4),
            "<" => (BinOp::Lt, 4),
            "<=" => (BinOp::Le, 4),
            ">" => (BinOp::Gt, 4),
            ">=" => (BinOp::Ge, 4),
            "+" => (BinOp::Add, 5),
            "-" => (BinOp::Sub, 5),
            "*" => (BinOp::Mul, 6),
            "/" => (BinOp::Div, 6),
            "%" => (BinOp::Rem, 6),
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

/// A parsed, not yet resolved, expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    pub kind: AstKind,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AstKind {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
    Name(String),
    Neg(Box<Ast>),
    Not(Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
}

struct Parser {
    tokens: Vec<(Token, Range<usize>)>,
    pos: usize,
    end: usize,
}

/// Parses an expression.
pub fn parse(text: &str) -> Result<Ast, ExprError> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: text.len(),
    };
    if parser.tokens.is_empty() {
        return Err(ExprError::new(0..text.len(), "empty expression")
            .with_help("write a condition such as `heart_rate >= 120`"));
    }
    let ast = parser.expr(0)?;
    if let Some((token, span)) = parser.tokens.get(parser.pos) {
        return Err(
            ExprError::new(span.clone(), format!("unexpected {}", describe(token))).with_help(
                "expected an operator such as `and`, `<` or `+`, or the end of the expression",
            ),
        );
    }
    Ok(ast)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Num(n) => format!("number `{n}`"),
        Token::Str(s) => format!("string '{s}'"),
        Token::Ident(s) => format!("name `{s}`"),
        Token::Op(op) => format!("`{op}`"),
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::Comma => "`,`".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&(Token, Range<usize>)> {
        self.tokens.get(self.pos)
    }

    fn binary_op(&self) -> Option<(BinOp, u8)> {
        match self.peek() {
            Some((Token::Op(op), _)) => BinOp::from_token(op),
            Some((Token::Ident(word), _)) => BinOp::from_token(word.as_str()),
            _ => None,
        }
    }

    /// Precedence climbing; `not` binds looser than comparisons (level 3).
    fn expr(&mut self, min_prec: u8) -> Result<Ast, ExprError> {
        let mut left = self.unary()?;
        while let Some((op, prec)) = self.binary_op() {
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let right = self.expr(prec + 1)?;
            let span = left.span.start..right.span.end;
            left = Ast {
                kind: AstKind::Binary(op, Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, ExprError> {
        let Some((token, span)) = self.peek().cloned() else {
            return Err(
                ExprError::new(self.end..self.end, "expression ends too early")
                    .with_help("expected a value, a name or `(`"),
            );
        };
        match token {
            Token::Op("-") => {
                self.pos += 1;
                let inner = self.expr(7)?;
                let span = span.start..inner.span.end;
                Ok(Ast {
                    kind: AstKind::Neg(Box::new(inner)),
                    span,
                })
            }
            Token::Op("not") => {
                self.pos += 1;
                let inner = self.expr(3)?;
                let span = span.start..inner.span.end;
                Ok(Ast {
                    kind: AstKind::Not(Box::new(inner)),
                    span,
                })
            }
            Token::Ident(word) if word == "not" => {
                self.pos += 1;
                let inner = self.expr(3)?;
                let span = span.start..inner.span.end;
                Ok(Ast {
                    kind: AstKind::Not(Box::new(inner)),
                    span,
                })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Ast, ExprError> {
        let Some((token, span)) = self.peek().cloned() else {
            return Err(ExprError::new(
                self.end..self.end,
                "expression ends too early",
            ));
        };
        self.pos += 1;
        let kind = match token {
            Token::Num(n) => AstKind::Num(n),
            Token::Str(s) => AstKind::Str(s),
            Token::LParen => {
                let inner = self.expr(0)?;
                return match self.peek() {
                    Some((Token::RParen, close)) => {
                        let span = span.start..close.end;
                        self.pos += 1;
                        Ok(Ast {
                            kind: inner.kind,
                            span,
                        })
                    }
                    _ => Err(ExprError::new(span, "unclosed `(`").with_help("add the missing `)`")),
                };
            }
            Token::Ident(word) => match word.as_str() {
                "true" => AstKind::Bool(true),
                "false" => AstKind::Bool(false),
                "null" => AstKind::Null,
                "and" | "or" | "not" => {
                    return Err(ExprError::new(span, format!("unexpected `{word}`"))
                        .with_help("expected a value before the operator"))
                }
                _ => {
                    if let Some((Token::LParen, _)) = self.peek() {
                        self.pos += 1;
                        let mut args = Vec::new();
                        loop {
                            if let Some((Token::RParen, close)) = self.peek().cloned() {
                                self.pos += 1;
                                let span = span.start..close.end;
                                return Ok(Ast {
                                    kind: AstKind::Call(word, args),
                                    span,
                                });
                            }
                            if !args.is_empty() {
                                match self.peek().cloned() {
                                    Some((Token::Comma, _)) => self.pos += 1,
                                    Some((t, s)) => {
                                        return Err(ExprError::new(
                                            s,
                                            format!("unexpected {}", describe(&t)),
                                        )
                                        .with_help(
                                            "separate arguments with `,` and close with `)`",
                                        ))
                                    }
                                    None => {
                                        return Err(ExprError::new(
                                            span,
                                            format!("unclosed call of `{word}`"),
                                        )
                                        .with_help("add the missing `)`"))
                                    }
                                }
                            }
                            args.push(self.expr(0)?);
                        }
                    }
                    AstKind::Name(word)
                }
            },
            other => {
                return Err(
                    ExprError::new(span, format!("unexpected {}", describe(&other)))
                        .with_help("expected a value, a name or `(`"),
                )
            }
        };
        Ok(Ast { kind, span })
    }
}

/// What a name in an expression refers to, decided by the rule compiler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    /// A payload field of the event being evaluated, by index.
    Field(usize),
    /// A statistic of the rule, by index.
    Stat(usize),
    /// A `let` binding of the rule, by index.
    Let(usize),
    /// The local night (day number) of the event being evaluated.
    Night,
}

/// Resolves names while compiling; implemented by the rule compiler for each context.
pub trait Scope {
    fn resolve(&self, name: &str) -> Option<(Slot, ValueType)>;
    /// Names that would have resolved, for "did you mean" help.
    fn known_names(&self) -> Vec<String>;
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Ln,
    Log10,
    Exp,
    Sqrt,
    Abs,
    Round,
    Floor,
    Ceil,
    Min,
    Max,
    Present,
    Coalesce,
}

const FUNCS: &[(&str, Func)] = &[
    ("ln", Func::Ln),
    ("log10", Func::Log10),
    ("exp", Func::Exp),
    ("sqrt", Func::Sqrt),
    ("abs", Func::Abs),
    ("round", Func::Round),
    ("floor", Func::Floor),
    ("ceil", Func::Ceil),
    ("min", Func::Min),
    ("max", Func::Max),
    ("present", Func::Present),
    ("coalesce", Func::Coalesce),
];

/// A resolved, type-checked expression, ready to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(ConstValue),
    Load(Slot),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// A literal that owns its text.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstValue {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
}

/// Supplies slot values while evaluating.
pub trait Env {
    fn load(&self, slot: Slot) -> Value<'_>;
}

/// Resolves and type-checks `ast`; returns the expression and its type.
pub fn compile(ast: &Ast, scope: &dyn Scope) -> Result<(Expr, ValueType), ExprError> {
    use ValueType as T;
    let span = ast.span.clone();
    Ok(match &ast.kind {
        AstKind::Num(n) => (Expr::Const(ConstValue::Num(*n)), T::Number),
        AstKind::Str(s) => (Expr::Const(ConstValue::Str(s.clone())), T::Text),
        AstKind::Bool(b) => (Expr::Const(ConstValue::Bool(*b)), T::Bool),
        AstKind::Null => (Expr::Const(ConstValue::Null), T::Null),
        AstKind::Name(name) => match scope.resolve(name) {
            Some((slot, ty)) => (Expr::Load(slot), ty),
            None => {
                let known = scope.known_names();
                let mut err = ExprError::new(span, format!("unknown name `{name}`"));
                err.help = Some(match closest(name, &known) {
                    Some(best) => {
                        format!("did you mean `{best}`? known here: {}", known.join(", "))
                    }
                    None => format!("known here: {}", known.join(", ")),
                });
                return Err(err);
            }
        },
        AstKind::Neg(inner) => {
            let (e, ty) = compile(inner, scope)?;
            expect(ty, T::Number, &inner.span, "`-`")?;
            (Expr::Neg(Box::new(e)), T::Number)
        }
        AstKind::Not(inner) => {
            let (e, ty) = compile(inner, scope)?;
            expect(ty, T::Bool, &inner.span, "`not`")?;
            (Expr::Not(Box::new(e)), T::Bool)
        }
        AstKind::Binary(op, l, r) => {
            let (le, lt) = compile(l, scope)?;
            let (re, rt) = compile(r, scope)?;
            let what = format!("`{}`", op.symbol());
            let ty = match op {
                BinOp::Or | BinOp::And => {
                    expect(lt, T::Bool, &l.span, &what)?;
                    expect(rt, T::Bool, &r.span, &what)?;
                    T::Bool
                }
                BinOp::Eq | BinOp::Ne => {
                    if lt != rt && lt != T::Null && rt != T::Null {
                        return Err(ExprError::new(
                            span,
                            format!("cannot compare a {lt} with a {rt}"),
                        ));
                    }
                    T::Bool
                }
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    expect(lt, T::Number, &l.span, &what)?;
                    expect(rt, T::Number, &r.span, &what)?;
                    T::Bool
                }
                _ => {
                    expect(lt, T::Number, &l.span, &what)?;
                    expect(rt, T::Number, &r.span, &what)?;
                    T::Number
                }
            };
            (Expr::Binary(*op, Box::new(le), Box::new(re)), ty)
        }
        AstKind::Call(name, args) => {
            let Some(&(_, func)) = FUNCS.iter().find(|(n, _)| n == name) else {
                let names: Vec<String> = FUNCS.iter().map(|(n, _)| n.to_string()).collect();
                return Err(ExprError::new(span, format!("unknown function `{name}`"))
                    .with_help(format!("functions: {}", names.join(", "))));
            };
            let mut compiled = Vec::with_capacity(args.len());
            let mut types = Vec::with_capacity(args.len());
            for arg in args {
                let (e, ty) = compile(arg, scope)?;
                compiled.push(e);
                types.push((ty, arg.span.clone()));
            }
            let arity_ok = match func {
                Func::Min | Func::Max | Func::Coalesce => !args.is_empty(),
                _ => args.len() == 1,
            };
            if !arity_ok {
                return Err(ExprError::new(
                    span,
                    format!(
                        "`{name}` takes {}",
                        if matches!(func, Func::Min | Func::Max | Func::Coalesce) {
                            "one or more arguments"
                        } else {
                            "exactly one argument"
                        }
                    ),
                ));
            }
            let ty = match func {
                Func::Present => T::Bool,
                Func::Coalesce => {
                    let first = types
                        .iter()
                        .map(|(t, _)| *t)
                        .find(|t| *t != T::Null)
                        .unwrap_or(T::Null);
                    for (t, s) in &types {
                        expect(*t, first, s, "`coalesce`")?;
                    }
                    first
                }
                _ => {
                    for (t, s) in &types {
                        expect(*t, T::Number, s, &format!("`{name}`"))?;
                    }
                    T::Number
                }
            };
            (Expr::Call(func, compiled), ty)
        }
    })
}

fn expect(
    found: ValueType,
    wanted: ValueType,
    span: &Range<usize>,
    what: &str,
) -> Result<(), ExprError> {
    if found == wanted || found == ValueType::Null || wanted == ValueType::Null {
        Ok(())
    } else {
        Err(ExprError::new(
            span.clone(),
            format!("{what} needs a {wanted} here, found a {found}"),
        ))
    }
}

/// The known name nearest to `name` by edit distance, if it is close.
pub fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cost = usize::from(ca != b[j]);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

impl Expr {
    /// The one payload field the expression reads, if it reads exactly one field and nothing
    /// else (no statistic, binding or night).
    pub fn single_field(&self) -> Option<usize> {
        fn walk(e: &Expr, found: &mut Option<usize>, other: &mut bool) {
            match e {
                Expr::Const(_) => {}
                Expr::Load(Slot::Field(i)) => match found {
                    Some(j) if j != i => *other = true,
                    _ => *found = Some(*i),
                },
                Expr::Load(_) => *other = true,
                Expr::Neg(e) | Expr::Not(e) => walk(e, found, other),
                Expr::Binary(_, l, r) => {
                    walk(l, found, other);
                    walk(r, found, other);
                }
                Expr::Call(_, args) => args.iter().for_each(|a| walk(a, found, other)),
            }
        }
        let (mut found, mut other) = (None, false);
        walk(self, &mut found, &mut other);
        found.filter(|_| !other)
    }

    /// Evaluates with SQL null semantics; never panics (division by zero gives null).
    pub fn eval<'a>(&'a self, env: &'a dyn Env) -> Value<'a> {
        match self {
            Expr::Const(c) => match c {
                ConstValue::Num(n) => Value::Num(*n),
                ConstValue::Str(s) => Value::Str(s),
                ConstValue::Bool(b) => Value::Bool(*b),
                ConstValue::Null => Value::Null,
            },
            Expr::Load(slot) => env.load(*slot),
            Expr::Neg(e) => match e.eval(env) {
                Value::Num(n) => Value::Num(-n),
                _ => Value::Null,
            },
            Expr::Not(e) => match e.eval(env) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Binary(op, l, r) => eval_binary(*op, l, r, env),
            Expr::Call(func, args) => eval_call(*func, args, env),
        }
    }

    /// True only when the expression evaluates to `true` (null and false do not fire).
    pub fn holds(&self, env: &dyn Env) -> bool {
        self.eval(env).is_true()
    }
}

fn finite(n: f64) -> Value<'static> {
    if n.is_finite() {
        Value::Num(n)
    } else {
        Value::Null
    }
}

fn eval_binary<'a>(op: BinOp, l: &'a Expr, r: &'a Expr, env: &'a dyn Env) -> Value<'a> {
    match op {
        BinOp::And => match l.eval(env) {
            Value::Bool(false) => Value::Bool(false),
            left => match (left, r.eval(env)) {
                (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        },
        BinOp::Or => match l.eval(env) {
            Value::Bool(true) => Value::Bool(true),
            left => match (left, r.eval(env)) {
                (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        },
        _ => {
            let (a, b) = (l.eval(env), r.eval(env));
            match (op, a, b) {
                (_, Value::Null, _) | (_, _, Value::Null) => Value::Null,
                (BinOp::Eq, a, b) => Value::Bool(a == b),
                (BinOp::Ne, a, b) => Value::Bool(a != b),
                (_, Value::Num(x), Value::Num(y)) => match op {
                    BinOp::Lt => Value::Bool(x < y),
                    BinOp::Le => Value::Bool(x <= y),
                    BinOp::Gt => Value::Bool(x > y),
                    BinOp::Ge => Value::Bool(x >= y),
                    BinOp::Add => finite(x + y),
                    BinOp::Sub => finite(x - y),
                    BinOp::Mul => finite(x * y),
                    BinOp::Div => finite(x / y),
                    BinOp::Rem => finite(x % y),
                    _ => Value::Null,
                },
                _ => Value::Null,
            }
        }
    }
}

fn eval_call<'a>(func: Func, args: &'a [Expr], env: &'a dyn Env) -> Value<'a> {
    match func {
        Func::Present => Value::Bool(args.first().is_some_and(|a| a.eval(env) != Value::Null)),
        Func::Coalesce => args
            .iter()
            .map(|a| a.eval(env))
            .find(|v| *v != Value::Null)
            .unwrap_or(Value::Null),
        Func::Min | Func::Max => {
            let mut best: Option<f64> = None;
            for arg in args {
                let Value::Num(n) = arg.eval(env) else {
                    return Value::Null;
                };
                best = Some(match best {
                    None => n,
                    Some(b) if func == Func::Min => b.min(n),
                    Some(b) => b.max(n),
                });
            }
            best.map_or(Value::Null, Value::Num)
        }
        _ => {
            let Some(Value::Num(x)) = args.first().map(|a| a.eval(env)) else {
                return Value::Null;
            };
            finite(match func {
                Func::Ln => x.ln(),
                Func::Log10 => x.log10(),
                Func::Exp => x.exp(),
                Func::Sqrt => x.sqrt(),
                Func::Abs => x.abs(),
                Func::Round => x.round(),
                Func::Floor => x.floor(),
                Func::Ceil => x.ceil(),
                _ => f64::NAN,
            })
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Const(ConstValue::Num(n)) => write!(f, "{n}"),
            Expr::Const(ConstValue::Str(s)) => write!(f, "'{s}'"),
            Expr::Const(ConstValue::Bool(b)) => write!(f, "{b}"),
            Expr::Const(ConstValue::Null) => write!(f, "null"),
            Expr::Load(slot) => write!(f, "{slot:?}"),
            Expr::Neg(e) => write!(f, "-({e})"),
            Expr::Not(e) => write!(f, "not ({e})"),
            Expr::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::Call(func, args) => {
                write!(f, "{func:?}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestScope;
    impl Scope for TestScope {
        fn resolve(&self, name: &str) -> Option<(Slot, ValueType)> {
            match name {
                "x" => Some((Slot::Field(0), ValueType::Number)),
                "y" => Some((Slot::Field(1), ValueType::Number)),
                "missing" => Some((Slot::Field(2), ValueType::Number)),
                "name" => Some((Slot::Field(3), ValueType::Text)),
                _ => None,
            }
        }
        fn known_names(&self) -> Vec<String> {
            vec!["x".into(), "y".into(), "missing".into(), "name".into()]
        }
    }

    struct TestEnv;
    impl Env for TestEnv {
        fn load(&self, slot: Slot) -> Value<'_> {
            match slot {
                Slot::Field(0) => Value::Num(3.0),
                Slot::Field(1) => Value::Num(4.0),
                Slot::Field(3) => Value::Str("fever"),
                _ => Value::Null,
            }
        }
    }

    fn eval(text: &str) -> Value<'static> {
        let ast = parse(text).unwrap();
        let (expr, _) = compile(&ast, &TestScope).unwrap();
        match expr.eval(&TestEnv) {
            Value::Str(_) => Value::Str("<str>"),
            Value::Num(n) => Value::Num(n),
            Value::Bool(b) => Value::Bool(b),
            Value::Null => Value::Null,
        }
    }

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(eval("x + y * 2"), Value::Num(11.0));
        assert_eq!(eval("(x + y) * 2"), Value::Num(14.0));
        assert_eq!(eval("-x + 1"), Value::Num(-2.0));
        assert_eq!(eval("x - 0.5 * y"), Value::Num(1.0));
        assert_eq!(eval("ln(exp(2))"), Value::Num(2.0));
        assert_eq!(eval("max(x, y, 1)"), Value::Num(4.0));
        assert_eq!(eval("x / 0"), Value::Null);
        assert_eq!(eval("1e3 + .5"), Value::Num(1000.5));
    }

    #[test]
    fn sql_null_logic() {
        assert_eq!(eval("missing < 5"), Value::Null);
        assert_eq!(eval("x < 5 or missing < 5"), Value::Bool(true));
        assert_eq!(eval("x > 5 or missing < 5"), Value::Null);
        assert_eq!(eval("x > 5 and missing < 5"), Value::Bool(false));
        assert_eq!(eval("not (missing < 5)"), Value::Null);
        assert_eq!(eval("present(missing)"), Value::Bool(false));
        assert_eq!(eval("coalesce(missing, 7)"), Value::Num(7.0));
        assert_eq!(eval("name == 'fever' && !(x > y)"), Value::Bool(true));
    }

    #[test]
    fn errors_carry_spans_and_help() {
        let err = compile(&parse("x < yy").unwrap(), &TestScope).unwrap_err();
        assert_eq!(err.span, 4..6);
        assert!(err.help.unwrap().contains("did you mean `y`"));
        let err = parse("x = 3").unwrap_err();
        assert_eq!(err.span, 2..3);
        assert!(err.help.unwrap().contains("=="));
        let err = parse("(x < 3").unwrap_err();
        assert!(err.message.contains("unclosed"));
        let err = compile(&parse("x and y").unwrap(), &TestScope).unwrap_err();
        assert!(err.message.contains("needs a boolean"), "{}", err.message);
        let err = compile(&parse("name < 3").unwrap(), &TestScope).unwrap_err();
        assert!(err.message.contains("needs a number"));
        assert!(parse("x <").is_err());
        assert!(parse("").is_err());
        assert!(parse("x 3").is_err());
        assert!(compile(&parse("foo(x)").unwrap(), &TestScope).is_err());
    }
}
