//! The `Sec-WebSocket-Extensions` grammar (RFC 6455 9.1): a list of extensions, each a name
//! with parameters. What the parameters mean is each extension's business (permessage-deflate's
//! is in `proto::deflate`). Strings in, structures out.

use crate::proto::http::is_tchar;

/// One element of an extension list: a name and its parameters, quoted values unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension's name, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, with their values if they have one.
    pub params: Vec<(String, Option<String>)>,
}

/// The `Sec-WebSocket-Extensions` value(s) do not follow the grammar of RFC 6455 section 9.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError;

/// Parses every value of a `Sec-WebSocket-Extensions` header (several header lines make one
/// list) into extensions, in order. Empty list elements are skipped, as HTTP lists allow.
///
/// ```text
/// extension-list  = 1#extension
/// extension       = token *( ";" extension-param )
/// extension-param = token [ "=" ( token / quoted-string ) ]
/// ```
pub fn parse_extensions<'a, I>(values: I) -> Result<Vec<Extension>, SyntaxError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut out = Vec::new();
    for value in values {
        let mut p = Parser {
            s: value.as_bytes(),
            at: 0,
        };
        loop {
            p.skip_space();
            if p.eat(b',') {
                continue;
            }
            if p.done() {
                break;
            }
            let name = p.token()?;
            let mut params = Vec::new();
            loop {
                p.skip_space();
                if !p.eat(b';') {
                    break;
                }
                p.skip_space();
                let param = p.token()?;
                p.skip_space();
                let value = if p.eat(b'=') {
                    p.skip_space();
                    Some(p.value()?)
                } else {
                    None
                };
                params.push((param, value));
            }
            out.push(Extension { name, params });
            p.skip_space();
            if !p.done() && !p.eat(b',') {
                return Err(SyntaxError);
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at == self.s.len()
    }

    fn skip_space(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t') {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&byte);
        self.at += usize::from(hit);
        hit
    }

    fn token(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        while self.at < self.s.len() && is_tchar(self.s[self.at]) {
            self.at += 1;
        }
        if self.at == start {
            return Err(SyntaxError);
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    /// A token or a quoted string; RFC 6455 9.1: a quoted value must be a token once unquoted.
    fn value(&mut self) -> Result<String, SyntaxError> {
        if !self.eat(b'"') {
            return self.token();
        }
        let mut v = Vec::new();
        loop {
            match self.s.get(self.at) {
                None => return Err(SyntaxError),
                Some(b'"') => break,
                Some(b'\\') => {
                    v.push(*self.s.get(self.at + 1).ok_or(SyntaxError)?);
                    self.at += 2;
                }
                Some(&b) => {
                    v.push(b);
                    self.at += 1;
                }
            }
        }
        self.at += 1;
        if v.is_empty() || !v.iter().all(|&b| is_tchar(b)) {
            return Err(SyntaxError);
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn extension_lists_parse() {
        let pmd = |p: &[(&str, Option<&str>)]| ext("permessage-deflate", p);
        type Row<'a> = (Vec<&'a str>, Result<Vec<Extension>, SyntaxError>);
        let rows: Vec<Row<'_>> = vec![
            (vec![], Ok(vec![])),
            (vec![""], Ok(vec![])),
            (vec!["permessage-deflate"], Ok(vec![pmd(&[])])),
            (
                vec!["permessage-deflate; client_max_window_bits"],
                Ok(vec![pmd(&[("client_max_window_bits", None)])]),
            ),
            (
                vec!["permessage-deflate ;server_max_window_bits = 10 ; x"],
                Ok(vec![pmd(&[
                    ("server_max_window_bits", Some("10")),
                    ("x", None),
                ])]),
            ),
            (
                vec!["permessage-deflate; server_max_window_bits=\"10\""],
                Ok(vec![pmd(&[("server_max_window_bits", Some("10"))])]),
            ),
            (
                vec!["foo, permessage-deflate", "bar;a=b"],
                Ok(vec![
                    ext("foo", &[]),
                    pmd(&[]),
                    ext("bar", &[("a", Some("b"))]),
                ]),
            ),
            (vec![" , permessage-deflate ,"], Ok(vec![pmd(&[])])),
            // A quoted-pair stands for the character behind the backslash.
            (
                vec!["permessage-deflate; a=\"1\\0\""],
                Ok(vec![pmd(&[("a", Some("10"))])]),
            ),
            (vec!["permessage-deflate; a=\"1\\"], Err(SyntaxError)),
            (vec!["permessage-deflate;"], Err(SyntaxError)),
            (vec!["permessage-deflate; a="], Err(SyntaxError)),
            (vec!["permessage-deflate; a=\"\""], Err(SyntaxError)),
            (vec!["permessage-deflate; a=\"1 0\""], Err(SyntaxError)),
            (vec!["permessage-deflate; a=\"10"], Err(SyntaxError)),
            (vec!["permessage deflate"], Err(SyntaxError)),
            (vec!["; a"], Err(SyntaxError)),
            (vec!["permessage-deflate; a=1=2"], Err(SyntaxError)),
        ];
        for (values, want) in rows {
            assert_eq!(parse_extensions(values.iter().copied()), want, "{values:?}");
        }
    }
}
