//! Why the configuration could not be loaded, every problem of a layer at once.

use std::fmt;
use std::path::PathBuf;

use crate::rules::diagnostic::Diagnostic;

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file named by `--config` could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file has problems, each with its span, in the order they appear in it.
    Invalid {
        source: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// An environment variable has a value that cannot be used.
    Env { var: &'static str, message: String },
    /// The layers combined give an unusable configuration (e.g. two topics with one name).
    Combined(Vec<String>),
}

impl ConfigError {
    /// Every problem, with a source snippet for file problems.
    pub fn render(&self, color: bool) -> String {
        match self {
            ConfigError::Invalid {
                source,
                diagnostics,
            } => diagnostics
                .iter()
                .map(|d| d.render(source, color))
                .collect(),
            other => format!("{other}\n"),
        }
    }
}

/// One line per problem, `file:line:column: message` for the file's.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(
                    f,
                    "cannot read the configuration {}: {error}",
                    path.display()
                )
            }
            ConfigError::Invalid {
                source,
                diagnostics,
            } => {
                for (i, d) in diagnostics.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    let (line, column) = d.line_col(source);
                    write!(f, "{}:{line}:{column}: {}", d.file.display(), d.message)?;
                    if let Some(help) = &d.help {
                        write!(f, " (help: {help})")?;
                    }
                }
                Ok(())
            }
            ConfigError::Env { var, message } => write!(f, "environment variable {var}: {message}"),
            ConfigError::Combined(problems) => f.write_str(&problems.join("\n")),
        }
    }
}

impl std::error::Error for ConfigError {}
