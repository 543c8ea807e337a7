//! Tokens into an [`Ast`], by precedence climbing.

use std::ops::Range;

use super::lex::{lex, Token};
use super::{BinOp, ExprError};

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
