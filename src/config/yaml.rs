//! The only file that names the YAML crates: `serde_yaml` reads and writes the config model,
//! `saphyr-parser` tells where each node sits in the text (for edits that keep the user's
//! layout). Swapping `serde_yaml` for a maintained fork is a one-file change.

use serde::{de::DeserializeOwned, Serialize};

/// A YAML error with its position (1-based line and column) when the parser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

fn error(e: serde_yaml::Error) -> YamlError {
    let location = e.location();
    let mut message = e.to_string();
    // serde_yaml appends " at line L column C" to its message; we report the position ourselves.
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    YamlError {
        message,
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
    }
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(error)
}

/// Every document of a stream separated by `---` (GitLab's header + content files), in
/// order; positions in errors are the whole text's.
pub fn documents<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, YamlError> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| T::deserialize(d).map_err(error))
        .collect()
}

pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|e| YamlError {
        message: e.to_string(),
        line: None,
        column: None,
    })
}

/// Where one node of a YAML document sits in its text, as byte offsets: enough to replace or
/// remove it and leave every other byte of the file (comments, order, quoting) as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `start` is the first byte of the value as written (the quote, or a block scalar's `|`
    /// or `>`), `end` one past its last byte (trailing blanks and comments excluded).
    Scalar {
        start: usize,
        end: usize,
        value: String,
    },
    /// Block collections start at their first `-` or key; flow ones at `[` or `{`.
    Seq {
        start: usize,
        end: usize,
        flow: bool,
        items: Vec<Node>,
    },
    Map {
        start: usize,
        end: usize,
        flow: bool,
        entries: Vec<(Node, Node)>,
    },
}

impl Node {
    pub fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. } | Node::Seq { start, .. } | Node::Map { start, .. } => {
                *start
            }
        }
    }
    pub fn end(&self) -> usize {
        match self {
            Node::Scalar { end, .. } | Node::Seq { end, .. } | Node::Map { end, .. } => *end,
        }
    }
}

/// The layout of the first document of `text`: its root node, or `None` when it is empty.
pub fn layout(text: &str) -> Result<Option<Node>, YamlError> {
    use saphyr_parser::{Event, Parser};
    // saphyr counts characters; edits need byte offsets.
    let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    bytes.push(text.len());
    let mut events = Vec::new();
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| YamlError {
            message: e.info().to_string(),
            line: Some(e.marker().line()),
            column: Some(e.marker().col() + 1),
        })?;
        let at = |i: usize| bytes.get(i).copied().unwrap_or(text.len());
        let (start, end) = (at(span.start.index()), at(span.end.index()));
        match ev {
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => {}
            ev => events.push((ev, start, end)),
        }
    }
    let mut b = Builder {
        text,
        events: events.into_iter(),
        last_end: 0,
        last_close: 0,
    };
    b.node()
}

struct Builder<'t, I> {
    text: &'t str,
    events: I,
    /// Where the previous node (or key) ended: a block scalar's indicator comes after it.
    last_end: usize,
    /// One past the `]` or `}` that closed the last flow collection.
    last_close: usize,
}

impl<'t, 'i, I> Builder<'t, I>
where
    I: Iterator<Item = (saphyr_parser::Event<'i>, usize, usize)>,
{
    fn broken(&self, what: &str) -> YamlError {
        YamlError {
            message: format!("unexpected YAML structure: {what}"),
            line: None,
            column: None,
        }
    }

    /// The next node, or `None` at the end of a collection or the stream.
    fn node(&mut self) -> Result<Option<Node>, YamlError> {
        use saphyr_parser::{Event, ScalarStyle};
        let Some((ev, start, end)) = self.events.next() else {
            return Ok(None);
        };
        let node = match ev {
            Event::Scalar(value, style, ..) => {
                let (start, end) = match style {
                    ScalarStyle::Plain => (start, end),
                    ScalarStyle::SingleQuoted => (start, quoted_end(self.text, start, false)),
                    ScalarStyle::DoubleQuoted => (start, quoted_end(self.text, start, true)),
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        let head = self.text[self.last_end..start]
                            .find(['|', '>'])
                            .map_or(start, |i| self.last_end + i);
                        let body = self.text[..end.max(start)].trim_end();
                        (head, body.len().max(head + 1))
                    }
                };
                Node::Scalar {
                    start,
                    end,
                    value: value.into_owned(),
                }
            }
            Event::Alias(_) => Node::Scalar {
                start,
                end,
                value: String::new(),
            },
            Event::SequenceStart(..) => {
                let flow = end > start;
                let mut items = Vec::new();
                let close = loop {
                    match self.node()? {
                        Some(n) => {
                            self.last_end = n.end();
                            items.push(n);
                        }
                        None => break self.last_close,
                    }
                };
                let end = if flow {
                    close
                } else {
                    items.last().map_or(start, Node::end)
                };
                Node::Seq {
                    start,
                    end,
                    flow,
                    items,
                }
            }
            Event::MappingStart(..) => {
                let flow = end > start;
                let mut entries = Vec::new();
                let close = loop {
                    let Some(k) = self.node()? else {
                        break self.last_close;
                    };
                    self.last_end = k.end();
                    let v = self
                        .node()?
                        .ok_or_else(|| self.broken("a key without value"))?;
                    self.last_end = v.end();
                    entries.push((k, v));
                };
                let end = if flow {
                    close
                } else {
                    entries.last().map_or(start, |(_, v)| v.end())
                };
                Node::Map {
                    start,
                    end,
                    flow,
                    entries,
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.last_close = end;
                return Ok(None);
            }
            _ => return Err(self.broken("an event outside a document")),
        };
        Ok(Some(node))
    }
}

/// One past the closing quote of the quoted scalar starting at `start`.
fn quoted_end(text: &str, start: usize, double: bool) -> usize {
    let quote = if double { '"' } else { '\'' };
    let mut chars = text[start..].char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if double && c == '\\' {
            chars.next();
        } else if c == quote {
            if !double && chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
            } else {
                return start + i + 1;
            }
        }
    }
    text.len()
}
