//! WHOOP import (placeholder until the importer lands).

/// The events of one export.
pub struct WhoopImport {
    pub events: Vec<crate::event::Event>,
    pub rows: usize,
    pub skipped_rows: Vec<(usize, String)>,
}

/// Importing is not written yet.
#[derive(Debug, thiserror::Error)]
#[error("the WHOOP importer is not written yet")]
pub struct WhoopError;

pub fn import_whoop_file(
    _path: &std::path::Path,
    _user_id: &str,
) -> Result<WhoopImport, WhoopError> {
    Err(WhoopError)
}
