use super::*;
use crate::event::{Value, ValueType};

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
