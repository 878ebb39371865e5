//! Parser for the FHIRPath subset of the R4 search-parameter expressions.
//!
//! Owns: tokenising and parsing into [`Expr`]. Anything outside the subset is a [`ParseError`], so a caller
//! can tell a supported expression from one that would silently evaluate wrongly. Does not own evaluation.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParseError {
    #[error("unexpected character at offset {0}")]
    UnexpectedChar(usize),
    #[error("unterminated string literal")]
    UnterminatedString,
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    #[error("unexpected token {0}")]
    UnexpectedToken(String),
    #[error("unsupported function {0}()")]
    UnsupportedFunction(String),
    #[error("unsupported operator {0}")]
    UnsupportedOperator(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Num(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The focus: `$this`, or the implicit input of a leading identifier.
    This,
    /// `%resource`, `%context`, `%rootResource`: the resource being evaluated.
    Root,
    Lit(Literal),
    /// `input.name`. A name starting with an upper-case letter is a type filter (`Observation.code` starts with
    /// `Child(This, "Observation")`), since FHIR element names never start with one.
    Child(Box<Expr>, String),
    Call(Box<Expr>, Func),
    Index(Box<Expr>, usize),
    Is(Box<Expr>, String),
    As(Box<Expr>, String),
    Union(Vec<Expr>),
    Eq {
        left: Box<Expr>,
        right: Box<Expr>,
        negate: bool,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    Where(Box<Expr>),
    Exists(Option<Box<Expr>>),
    Empty,
    Not,
    First,
    Last,
    Resolve,
    OfType(String),
    As(String),
    Is(String),
    Extension(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64, bool),
    Env(String),
    This,
    Dot,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Pipe,
    Eq,
    Ne,
    Comma,
    Other(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'.' => push(&mut out, &mut i, Tok::Dot, 1),
            b'(' => push(&mut out, &mut i, Tok::LParen, 1),
            b')' => push(&mut out, &mut i, Tok::RParen, 1),
            b'[' => push(&mut out, &mut i, Tok::LBracket, 1),
            b']' => push(&mut out, &mut i, Tok::RBracket, 1),
            b'|' => push(&mut out, &mut i, Tok::Pipe, 1),
            b',' => push(&mut out, &mut i, Tok::Comma, 1),
            b'=' => push(&mut out, &mut i, Tok::Eq, 1),
            b'!' if bytes.get(i + 1) == Some(&b'=') => push(&mut out, &mut i, Tok::Ne, 2),
            b'<' | b'>' | b'~' | b'+' | b'-' | b'*' | b'/' | b'&' | b'!' => {
                let len = if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                out.push(Tok::Other(src[i..i + len].to_string()));
                i += len;
            }
            b'\'' => {
                let (s, next) = string_literal(src, i)?;
                out.push(Tok::Str(s));
                i = next;
            }
            b'`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or(ParseError::UnterminatedString)?;
                out.push(Tok::Ident(src[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'$' | b'%' => {
                let start = i + 1;
                let end = ident_end(bytes, start);
                let name = &src[start..end];
                if c == b'$' && name == "this" {
                    out.push(Tok::This);
                } else if c == b'%' && !name.is_empty() {
                    out.push(Tok::Env(name.to_string()));
                } else {
                    return Err(ParseError::UnexpectedChar(i));
                }
                i = end;
            }
            b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let mut is_int = true;
                if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                    is_int = false;
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let n = src[start..i]
                    .parse::<f64>()
                    .map_err(|_| ParseError::UnexpectedChar(start))?;
                out.push(Tok::Num(n, is_int));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = ident_end(bytes, i);
                out.push(Tok::Ident(src[i..end].to_string()));
                i = end;
            }
            _ => return Err(ParseError::UnexpectedChar(i)),
        }
    }
    Ok(out)
}

fn push(out: &mut Vec<Tok>, i: &mut usize, t: Tok, len: usize) {
    out.push(t);
    *i += len;
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

fn string_literal(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        match ch {
            '\'' => return Ok((out, start + 1 + off + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => out.push(other),
                None => return Err(ParseError::UnterminatedString),
            },
            other => out.push(other),
        }
    }
    Err(ParseError::UnterminatedString)
}

/// Parse a whole expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.or_expr()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(unexpected(t)),
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn unexpected(t: &Tok) -> ParseError {
    match t {
        Tok::Other(op) => ParseError::UnsupportedOperator(op.clone()),
        other => ParseError::UnexpectedToken(format!("{other:?}")),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }

    fn next(&mut self) -> Result<Tok, ParseError> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or(ParseError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &Tok) -> Result<(), ParseError> {
        let t = self.next()?;
        if &t == want {
            Ok(())
        } else {
            Err(unexpected(&t))
        }
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        loop {
            if self.peek_ident("or") {
                self.pos += 1;
                let right = self.and_expr()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            } else if self.peek_ident("xor") || self.peek_ident("implies") {
                return Err(ParseError::UnsupportedOperator(format!(
                    "{:?}",
                    self.peek()
                )));
            } else {
                return Ok(left);
            }
        }
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.eq_expr()?;
        while self.peek_ident("and") {
            self.pos += 1;
            let right = self.eq_expr()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn eq_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.union_expr()?;
        loop {
            let negate = match self.peek() {
                Some(Tok::Eq) => false,
                Some(Tok::Ne) => true,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.union_expr()?;
            left = Expr::Eq {
                left: Box::new(left),
                right: Box::new(right),
                negate,
            };
        }
    }

    fn union_expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.type_expr()?;
        if self.peek() != Some(&Tok::Pipe) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek() == Some(&Tok::Pipe) {
            self.pos += 1;
            items.push(self.type_expr()?);
        }
        Ok(Expr::Union(items))
    }

    fn type_expr(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.postfix()?;
        loop {
            if self.peek_ident("is") {
                self.pos += 1;
                e = Expr::Is(Box::new(e), self.type_spec()?);
            } else if self.peek_ident("as") {
                self.pos += 1;
                e = Expr::As(Box::new(e), self.type_spec()?);
            } else {
                return Ok(e);
            }
        }
    }

    /// `Patient`, `FHIR.Patient`, `System.String`: the namespace is dropped (FHIR types are what we compare).
    fn type_spec(&mut self) -> Result<String, ParseError> {
        let mut name = match self.next()? {
            Tok::Ident(n) => n,
            other => return Err(unexpected(&other)),
        };
        while self.peek() == Some(&Tok::Dot)
            && matches!(self.toks.get(self.pos + 1), Some(Tok::Ident(_)))
        {
            self.pos += 1;
            if let Tok::Ident(n) = self.next()? {
                name = n;
            }
        }
        Ok(name)
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.term()?;
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    let name = match self.next()? {
                        Tok::Ident(n) => n,
                        other => return Err(unexpected(&other)),
                    };
                    e = self.invocation(e, name)?;
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    let idx = match self.next()? {
                        Tok::Num(n, true) if n >= 0.0 => n as usize,
                        other => return Err(unexpected(&other)),
                    };
                    self.expect(&Tok::RBracket)?;
                    e = Expr::Index(Box::new(e), idx);
                }
                _ => return Ok(e),
            }
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        match self.next()? {
            Tok::LParen => {
                let e = self.or_expr()?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            Tok::Str(s) => Ok(Expr::Lit(Literal::Str(s))),
            Tok::Num(n, _) => Ok(Expr::Lit(Literal::Num(n))),
            Tok::This => Ok(Expr::This),
            Tok::Env(name) => match name.as_str() {
                "resource" | "context" | "rootResource" => Ok(Expr::Root),
                _ => Err(ParseError::UnexpectedToken(format!("%{name}"))),
            },
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok(Expr::Lit(Literal::Bool(true))),
                "false" => Ok(Expr::Lit(Literal::Bool(false))),
                _ => self.invocation(Expr::This, name),
            },
            other => Err(unexpected(&other)),
        }
    }

    /// `name` or `name(args)` applied to `input`.
    fn invocation(&mut self, input: Expr, name: String) -> Result<Expr, ParseError> {
        if self.peek() != Some(&Tok::LParen) {
            return Ok(Expr::Child(Box::new(input), name));
        }
        self.pos += 1;
        let func = match name.as_str() {
            "where" => Func::Where(Box::new(self.or_expr()?)),
            "exists" if self.peek() == Some(&Tok::RParen) => Func::Exists(None),
            "exists" => Func::Exists(Some(Box::new(self.or_expr()?))),
            "empty" => Func::Empty,
            "not" => Func::Not,
            "first" => Func::First,
            "last" => Func::Last,
            "resolve" => Func::Resolve,
            "ofType" => Func::OfType(self.type_spec()?),
            "as" => Func::As(self.type_spec()?),
            "is" => Func::Is(self.type_spec()?),
            "extension" => match self.next()? {
                Tok::Str(url) => Func::Extension(url),
                other => return Err(unexpected(&other)),
            },
            _ => return Err(ParseError::UnsupportedFunction(name)),
        };
        self.expect(&Tok::RParen)?;
        Ok(Expr::Call(Box::new(input), func))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn child(e: Expr, n: &str) -> Expr {
        Expr::Child(Box::new(e), n.into())
    }

    #[test]
    fn paths_unions_and_types() {
        let e = parse("Observation.subject.where(resolve() is Patient)").unwrap();
        let subject = child(child(Expr::This, "Observation"), "subject");
        let crit = Expr::Is(
            Box::new(Expr::Call(Box::new(Expr::This), Func::Resolve)),
            "Patient".into(),
        );
        assert_eq!(
            e,
            Expr::Call(Box::new(subject), Func::Where(Box::new(crit)))
        );

        let e =
            parse("(Observation.value as Quantity) | (Observation.value as SampledData)").unwrap();
        let Expr::Union(items) = e else {
            panic!("not a union")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            Expr::As(
                Box::new(child(child(Expr::This, "Observation"), "value")),
                "Quantity".into()
            )
        );

        let e = parse("(Observation.value as CodeableConcept).text").unwrap();
        assert!(matches!(e, Expr::Child(_, ref n) if n == "text"));
        assert!(parse("Bundle.entry[0].resource").is_ok());
        assert!(parse("Patient.deceased.exists() and Patient.deceased != false").is_ok());
        assert!(parse("Condition.onset.as(Age) | Condition.onset.as(Range)").is_ok());
        assert!(parse("Patient.extension('http://x.org/a').value").is_ok());
        assert!(parse("Patient.name.where(use='official' or use = 'usual').family").is_ok());
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        assert!(matches!(
            parse("Patient.name.select(family)"),
            Err(ParseError::UnsupportedFunction(_))
        ));
        assert!(matches!(
            parse("Observation.value > 5"),
            Err(ParseError::UnsupportedOperator(_))
        ));
        assert!(parse("Patient.name.where(").is_err());
        assert!(parse("Patient.name)").is_err());
        assert!(parse("'abc").is_err());
        assert!(parse("").is_err());
    }
}
