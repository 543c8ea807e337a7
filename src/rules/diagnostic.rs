//! Problems found in rule files, with the span that caused them, rendered as snippets.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

/// One problem in one rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// Byte range in the file (empty when the problem is the file itself).
    pub span: Range<usize>,
    pub message: String,
    /// What would be accepted, or how to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &Path, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// 1-based line and column of the span's start in `source`.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        let offset = self.span.start.min(source.len());
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, column)
    }

    /// `file:line:column: message`, then a snippet of the source with the span marked.
    pub fn render(&self, source: &str, color: bool) -> String {
        let (line, column) = self.line_col(source);
        let mut out = format!(
            "{}:{line}:{column}: error: {}\n",
            self.file.display(),
            self.message
        );
        let report = SnippetReport {
            message: self.message.clone(),
            help: self.help.clone(),
            source: Arc::new(NamedSource::new(
                self.file.display().to_string(),
                source.to_string(),
            )),
            span: clamp(&self.span, source.len()),
        };
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut snippet = String::new();
        if handler.render_report(&mut snippet, &report).is_ok() {
            out.push_str(&snippet);
        }
        out
    }
}

fn clamp(span: &Range<usize>, len: usize) -> Range<usize> {
    let start = span.start.min(len);
    start..span.end.clamp(start, len)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct SnippetReport {
    message: String,
    help: Option<String>,
    source: Arc<NamedSource<String>>,
    span: Range<usize>,
}

impl fmt::Display for SnippetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SnippetReport {}

impl miette::Diagnostic for SnippetReport {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source.as_ref())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.span.end - self.span.start;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".into()),
            self.span.start,
            len,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_and_snippet() {
        let source = "id = \"x\"\nversion = 1\nkindd = \"alert\"\n";
        let d = Diagnostic::new(Path::new("rules/x.toml"), 21..26, "unknown field `kindd`")
            .help("expected `kind`");
        assert_eq!(d.line_col(source), (3, 1));
        let text = d.render(source, false);
        assert!(
            text.starts_with("rules/x.toml:3:1: error: unknown field `kindd`"),
            "{text}"
        );
        assert!(text.contains("kindd = \"alert\""), "{text}");
        assert!(text.contains("expected `kind`"), "{text}");
    }
}
