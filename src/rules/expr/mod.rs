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
//!
//! # Layout
//!
//! The types of both forms live here: the parsed [`Ast`] and the resolved [`Expr`]. The
//! stages, in order:
//!
//! - `lex`: the text into tokens;
//! - `parse`: tokens into an [`Ast`], by precedence climbing;
//! - `resolve`: [`compile`] resolves names through a [`Scope`] and checks types, giving an
//!   [`Expr`]; [`closest`] finds the name meant;
//! - `eval`: [`Expr::eval`] with SQL null semantics, slots read through an [`Env`].

mod eval;
mod lex;
mod parse;
mod resolve;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Range;

pub use eval::Env;
pub use parse::{parse, Ast, AstKind};
pub use resolve::{closest, compile, Scope};

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
        let op = match op {
            "or" => BinOp::Or,
            "and" => BinOp::And,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Rem,
            _ => return None,
        };
        Some((op, op.precedence()))
    }

    /// Binding strength, as the parser climbs operators (higher binds tighter).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
        }
    }

    pub fn symbol(self) -> &'static str {
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
