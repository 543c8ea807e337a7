//! An [`Ast`] into an [`Expr`]: names resolved through a [`Scope`], types checked.

use std::ops::Range;

use super::parse::{Ast, AstKind};
use super::{BinOp, ConstValue, Expr, ExprError, Func, Slot};
use crate::event::ValueType;

/// Resolves names while compiling; implemented by the rule compiler for each context.
pub trait Scope {
    fn resolve(&self, name: &str) -> Option<(Slot, ValueType)>;
    /// Names that would have resolved, for "did you mean" help.
    fn known_names(&self) -> Vec<String>;
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
