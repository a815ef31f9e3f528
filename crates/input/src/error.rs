//! Errors of the input layer.

use std::path::PathBuf;

/// What can go wrong setting up input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The `--input` file could not be opened.
    #[error("cannot open the input script {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The reader thread could not start.
    #[error("cannot start the input script reader")]
    Spawn(#[source] std::io::Error),
}
