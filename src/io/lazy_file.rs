//! A file that is created on its first write: `vigil run`'s dead-letter and late-event files,
//! so that a run with nothing to put in them leaves no empty files behind.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A buffered file, created (or truncated) when the first bytes are written to it.
#[derive(Debug)]
pub struct LazyFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl LazyFile {
    /// A file at `path`, not created yet. A file already there from an earlier run is emptied
    /// now, so that what it holds after the run is this run's, as when it was created
    /// eagerly; a folder that does not exist is reported now rather than at the first write,
    /// perhaps deep into the input.
    pub fn new(path: impl Into<PathBuf>) -> io::Result<LazyFile> {
        let path = path.into();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot create {}: the folder {} does not exist",
                    path.display(),
                    dir.display()
                ),
            ));
        }
        let file = match OpenOptions::new().write(true).truncate(true).open(&path) {
            Ok(file) => Some(BufWriter::new(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(context(&path, e)),
        };
        Ok(LazyFile { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let file = File::create(&self.path).map_err(|e| context(&self.path, e))?;
            self.file = Some(BufWriter::new(file));
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the file was just created"))
    }
}

/// The error with the path in its message and its kind kept (a full disk stays a full disk).
fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
}

impl Write for LazyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_written_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead-letter.jsonl");
        let mut file = LazyFile::new(&path).expect("folder exists");
        file.flush().expect("flush of nothing");
        file.write_all(b"").expect("empty write");
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn the_first_write_creates_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("late-events.jsonl");
        let mut file = LazyFile::new(&path).expect("folder exists");
        assert!(!path.exists());
        file.write_all(b"{}\n").expect("write");
        file.flush().expect("flush");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
    }

    #[test]
    fn an_earlier_runs_file_is_emptied_and_a_missing_folder_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead-letter.jsonl");
        std::fs::write(&path, "old\n").expect("write");
        drop(LazyFile::new(&path).expect("folder exists"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");

        let e = LazyFile::new(dir.path().join("no/such/x.jsonl")).expect_err("no folder");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
