//! A small XML element tree for the request documents S3 clients send, with the checks every
//! one of them needs: one root, bounded depth, no attributes but the S3 namespace.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::encryption::{malformed, ConfigError, S3_XML_NAMESPACE};

/// Parses a whole document into its root element. The text of an element with children is
/// trimmed (it is only indentation); a leaf keeps its text exactly, since an object key may
/// begin or end with spaces.
pub(crate) fn parse(xml: &[u8]) -> Result<Element, ConfigError> {
    let text = std::str::from_utf8(xml).map_err(|_| malformed("the document is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    read_element(&mut reader, None)
}

/// A parsed XML element: its local name, text and children.
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) children: Vec<Element>,
}

impl Element {
    pub(crate) fn children_named(
        &self,
        name: &str,
        allowed: &[&str],
    ) -> Result<Vec<&Element>, ConfigError> {
        if let Some(other) = self
            .children
            .iter()
            .find(|c| !allowed.contains(&c.name.as_str()))
        {
            return Err(malformed(format!(
                "unexpected element {} in {}",
                other.name, self.name
            )));
        }
        if !self.text.is_empty() {
            return Err(malformed(format!("unexpected text in {}", self.name)));
        }
        Ok(self.children.iter().filter(|c| c.name == name).collect())
    }

    /// The child with this name, at most one, when every child is in `allowed` (empty: the
    /// check was made by an earlier call).
    pub(crate) fn only_child(
        &self,
        name: &str,
        allowed: &[&str],
    ) -> Result<Option<&Element>, ConfigError> {
        let found = if allowed.is_empty() {
            self.children.iter().filter(|c| c.name == name).collect()
        } else {
            self.children_named(name, allowed)?
        };
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(malformed(format!("{name} appears more than once"))),
        }
    }
}

const MAX_DEPTH: usize = 8;

fn read_element(
    reader: &mut Reader<&[u8]>,
    start: Option<BytesStart<'_>>,
) -> Result<Element, ConfigError> {
    read_element_at(reader, start, 0)
}

fn read_element_at(
    reader: &mut Reader<&[u8]>,
    start: Option<BytesStart<'_>>,
    depth: usize,
) -> Result<Element, ConfigError> {
    if depth > MAX_DEPTH {
        return Err(malformed("the document is nested too deeply"));
    }
    let bad = |e: quick_xml::Error| malformed(format!("the document is not well-formed XML: {e}"));
    let start = match start {
        Some(start) => start,
        None => loop {
            match reader.read_event().map_err(bad)? {
                Event::Start(s) => break s.into_owned(),
                Event::Empty(s) => return element_from(&s, String::new(), vec![]),
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                Event::Eof => return Err(malformed("the document is empty")),
                _ => return Err(malformed("the document must start with an element")),
            }
        },
    };
    let mut text = String::new();
    let mut children = Vec::new();
    loop {
        match reader.read_event().map_err(bad)? {
            Event::Start(s) => {
                children.push(read_element_at(reader, Some(s.into_owned()), depth + 1)?)
            }
            Event::Empty(s) => children.push(element_from(&s, String::new(), vec![])?),
            Event::Text(t) => text.push_str(&t.unescape().map_err(bad)?),
            Event::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Event::End(_) => break,
            Event::Comment(_) => {}
            Event::Eof => return Err(malformed("the document ends inside an element")),
            _ => return Err(malformed("unexpected content in the document")),
        }
    }
    let text = if children.is_empty() {
        text
    } else {
        text.trim().to_owned()
    };
    let element = element_from(&start, text, children)?;
    if depth == 0 {
        loop {
            match reader.read_event().map_err(bad)? {
                Event::Eof => break,
                Event::Comment(_) => {}
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                _ => return Err(malformed("content after the root element")),
            }
        }
    }
    Ok(element)
}

fn element_from(
    start: &BytesStart<'_>,
    text: String,
    children: Vec<Element>,
) -> Result<Element, ConfigError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    for attr in start.attributes() {
        let attr = attr.map_err(|_| malformed("bad attribute"))?;
        let key = attr.key.as_ref();
        let is_namespace = key == b"xmlns" || key.starts_with(b"xmlns:");
        if !is_namespace {
            return Err(malformed(format!("unexpected attribute on {name}")));
        }
        if key == b"xmlns" && attr.value.as_ref() != S3_XML_NAMESPACE.as_bytes() {
            return Err(malformed("the document has the wrong XML namespace"));
        }
    }
    Ok(Element {
        name,
        text,
        children,
    })
}
