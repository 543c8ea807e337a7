//! Evaluating an [`Expr`], with SQL null semantics.

use super::{BinOp, ConstValue, Expr, Func, Slot};
use crate::event::Value;

/// Supplies slot values while evaluating.
pub trait Env {
    fn load(&self, slot: Slot) -> Value<'_>;
}

impl Expr {
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
