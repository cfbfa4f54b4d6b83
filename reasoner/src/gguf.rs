//! A GGUF (v2/v3) reader: header, metadata, tensor directory, and bounds-checked tensor bytes.
//!
//! The file is memory-mapped. Every size read from the file (string lengths, array counts,
//! tensor dimensions and offsets) is checked against what is left of the file before it is
//! used, so a corrupt or truncated file gives an error naming the problem and the offset.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::quant::GgmlType;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: usize = 32;
const MAX_DIMS: usize = 4;
/// Most metadata array elements one file may hold (all arrays together). The largest real
/// vocabularies have a few hundred thousand tokens and as many merges; the bound keeps what a
/// hostile header can make us allocate to ~32 bytes × this, whatever it claims.
pub const MAX_METADATA_VALUES: usize = 1 << 22;
/// Capacity reserved from a count before the elements are read (the rest grows as they parse).
const RESERVE_CAP: usize = 4096;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f32
    F32(f32),
    /// f64
    F64(f64),
    /// bool
    Bool(bool),
    /// UTF-8 string (invalid UTF-8 is replaced, never rejected).
    String(String),
    /// Array of values of one type.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is any integer type holding a non-negative value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F32(_) => "f32",
            MetaValue::F64(_) => "f64",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous (innermost) one.
    pub dims: Vec<usize>,
    /// Raw ggml type id.
    pub type_id: u32,
    /// Offset of the data from the start of the data section.
    pub offset: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The type, or an error naming the tensor if we cannot read it.
    pub fn ty(&self) -> Result<GgmlType> {
        GgmlType::from_id(self.type_id).ok_or_else(|| Error::UnsupportedTensorType {
            tensor: self.name.clone(),
            type_name: GgmlType::name_of_id(self.type_id).to_string(),
            type_id: self.type_id,
            supported: crate::quant::SUPPORTED_TYPES,
        })
    }
    /// Shape in row-major (PyTorch) order: the reverse of `dims`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// An open GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    version: u32,
    metadata: HashMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    data_start: usize,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Metadata array elements read so far.
    values: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::Gguf {
            path: self.path.to_path_buf(),
            what: format!("{what} (at byte {})", self.pos),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes, only {left} left in a {}-byte file",
                self.buf.len()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit the rest of the file at `min_elem` bytes per element.
    fn count(&mut self, what: &str, min_elem: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_elem as u64) > left {
            return Err(self.err(format!(
                "{what} says {n}, which cannot fit in the {left} bytes left of the file"
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let bytes = self.take(n, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(key)?[0]),
            1 => MetaValue::I8(self.array::<1>(key)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => MetaValue::U32(self.u32(key)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => {
                let b = self.array::<1>(key)?[0];
                if b > 1 {
                    return Err(self.err(format!("metadata `{key}`: bool byte {b} is not 0 or 1")));
                }
                MetaValue::Bool(b == 1)
            }
            8 => MetaValue::String(self.string(key)?),
            9 => {
                if depth > 2 {
                    return Err(self.err(format!("metadata `{key}`: arrays nested too deep")));
                }
                let elem_ty = self.u32(key)?;
                let min = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => {
                        return Err(
                            self.err(format!("metadata `{key}`: unknown array element type {t}"))
                        );
                    }
                };
                let n = self.count(key, min)?;
                self.values = self.values.saturating_add(n);
                if self.values > MAX_METADATA_VALUES {
                    return Err(self.err(format!(
                        "metadata `{key}`: arrays hold more than {MAX_METADATA_VALUES} values in all"
                    )));
                }
                let mut v = Vec::with_capacity(n.min(RESERVE_CAP));
                for _ in 0..n {
                    v.push(self.value(elem_ty, key, depth + 1)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::U64(self.u64(key)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(key)?)),
            t => {
                return Err(self.err(format!(
                    "metadata `{key}` has unknown value type {t} (expected 0..=12)"
                )));
            }
        })
    }
}

impl GgufFile {
    /// Opens and validates a GGUF file. Tensor data is not read until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let map = crate::mmap::map_read_only(path)?;
        Self::parse(path.to_path_buf(), map)
    }

    fn parse(path: PathBuf, map: Mmap) -> Result<Self> {
        let (version, metadata, tensors, data_start) = {
            let mut c = Cursor {
                buf: &map,
                pos: 0,
                path: &path,
                values: 0,
            };
            let magic = c.array::<4>("magic")?;
            if &magic != GGUF_MAGIC {
                return Err(c.err(format!(
                    "not a GGUF file: it starts with \"{}\" (bytes {magic:02x?}), expected \"GGUF\"",
                    magic.escape_ascii()
                )));
            }
            let version = c.u32("version")?;
            if !(2..=3).contains(&version) {
                return Err(c.err(format!(
                    "GGUF version {version} is not supported (expected 2 or 3)"
                )));
            }
            // A tensor info takes at least 8 (name len) + 4 + 8 + 4 + 8 bytes.
            let n_tensors = c.count("tensor count", 32)?;
            let n_kv = c.count("metadata count", 13)?;
            let mut metadata = HashMap::with_capacity(n_kv.min(RESERVE_CAP));
            for _ in 0..n_kv {
                let key = c.string("metadata key")?;
                let ty = c.u32("metadata value type")?;
                let v = c.value(ty, &key, 0)?;
                metadata.insert(key, v);
            }
            let mut tensors = Vec::with_capacity(n_tensors.min(RESERVE_CAP));
            for _ in 0..n_tensors {
                let name = c.string("tensor name")?;
                let n_dims = c.u32("tensor dimension count")? as usize;
                if n_dims == 0 || n_dims > MAX_DIMS {
                    return Err(c.err(format!(
                        "tensor `{name}` has {n_dims} dimensions (expected 1..={MAX_DIMS})"
                    )));
                }
                let mut dims = Vec::with_capacity(n_dims);
                for _ in 0..n_dims {
                    let d = c.u64("tensor dimension")?;
                    dims.push(usize::try_from(d).map_err(|_| {
                        c.err(format!("tensor `{name}` dimension {d} is too large"))
                    })?);
                }
                let type_id = c.u32("tensor type")?;
                let offset = c.u64("tensor offset")?;
                let offset = usize::try_from(offset)
                    .map_err(|_| c.err(format!("tensor `{name}` offset {offset} is too large")))?;
                tensors.push(TensorInfo {
                    name,
                    dims,
                    type_id,
                    offset,
                });
            }
            let alignment = match metadata.get("general.alignment") {
                None => DEFAULT_ALIGNMENT,
                Some(v) => match v.as_u64() {
                    Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                    _ => {
                        return Err(c.err(format!(
                            "general.alignment is {v:?}, expected a power of two"
                        )));
                    }
                },
            };
            let data_start = c.pos.div_ceil(alignment) * alignment;
            (version, metadata, tensors, data_start)
        };
        let file_len = map.len();
        if data_start > file_len && !tensors.is_empty() {
            return Err(Error::Gguf {
                path,
                what: format!(
                    "truncated: data section would start at {data_start}, file has {file_len} bytes"
                ),
            });
        }
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let n = t
                .dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| Error::Gguf {
                    path: path.clone(),
                    what: format!("tensor `{}` dimensions {:?} overflow", t.name, t.dims),
                })?;
            // Unknown types are reported when the tensor is used, with the tensor's name; here
            // we only bound-check the ones whose size we know.
            if let Some(ty) = GgmlType::from_id(t.type_id) {
                let size = ty.bytes_for(n).ok_or_else(|| Error::Gguf {
                    path: path.clone(),
                    what: format!(
                        "tensor `{}` has {n} elements, not a whole number of {} blocks",
                        t.name,
                        ty.name()
                    ),
                })?;
                let end = data_start
                    .checked_add(t.offset)
                    .and_then(|s| s.checked_add(size));
                match end {
                    Some(end) if end <= file_len => {}
                    _ => {
                        return Err(Error::Gguf {
                            path: path.clone(),
                            what: format!(
                                "truncated: tensor `{}` ({} bytes at data offset {}) runs past the end of the {}-byte file",
                                t.name, size, t.offset, file_len
                            ),
                        });
                    }
                }
            }
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(Error::Gguf {
                    path: path.clone(),
                    what: format!("tensor `{}` appears twice", t.name),
                });
            }
        }
        Ok(GgufFile {
            path,
            map,
            version,
            metadata,
            tensors,
            by_name,
            data_start,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// All metadata.
    pub fn metadata(&self) -> &HashMap<String, MetaValue> {
        &self.metadata
    }
    /// The tensor directory in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// A tensor's directory entry by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor (bounds were checked when the file was opened).
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<&[u8]> {
        let ty = t.ty()?;
        let size = ty.bytes_for(t.len()).unwrap_or(usize::MAX);
        let start = self.data_start.saturating_add(t.offset);
        self.map
            .get(start..start.saturating_add(size))
            .ok_or_else(|| Error::Gguf {
                path: self.path.clone(),
                what: format!("tensor `{}` lies outside the file", t.name),
            })
    }

    fn meta_err(&self, key: &str, what: String) -> Error {
        Error::Config(format!("{}: metadata `{key}` {what}", self.path.display()))
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// A required unsigned integer.
    pub fn u64(&self, key: &str) -> Result<u64> {
        let v = self
            .get(key)
            .ok_or_else(|| self.meta_err(key, "is missing".into()))?;
        v.as_u64().ok_or_else(|| {
            self.meta_err(
                key,
                format!("is {} {v:?}, expected an unsigned integer", v.type_name()),
            )
        })
    }

    /// An optional unsigned integer (present but of the wrong type is an error).
    pub fn u64_opt(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.u64(key).map(Some),
        }
    }

    /// An optional float.
    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                self.meta_err(
                    key,
                    format!("is {} {v:?}, expected a number", v.type_name()),
                )
            }),
        }
    }

    /// An optional bool.
    pub fn bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Bool(b)) => Ok(Some(*b)),
            Some(v) => {
                Err(self.meta_err(key, format!("is {} {v:?}, expected a bool", v.type_name())))
            }
        }
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(MetaValue::String(s)) => Ok(s),
            Some(v) => Err(self.meta_err(key, format!("is {}, expected a string", v.type_name()))),
            None => Err(self.meta_err(key, "is missing".into())),
        }
    }

    /// An optional string.
    pub fn str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    /// A required array of strings.
    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        match self.get(key) {
            Some(MetaValue::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    MetaValue::String(s) => Ok(s.as_str()),
                    other => Err(self.meta_err(
                        key,
                        format!("element {i} is {}, expected a string", other.type_name()),
                    )),
                })
                .collect(),
            Some(v) => Err(self.meta_err(key, format!("is {}, expected an array", v.type_name()))),
            None => Err(self.meta_err(key, "is missing".into())),
        }
    }

    /// An optional array of integers.
    pub fn int_array_opt(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v.as_f64() {
                    Some(x) if x.fract() == 0.0 => Ok(x as i64),
                    _ => Err(self.meta_err(key, format!("element {i} is not an integer"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.meta_err(key, format!("is {}, expected an array", v.type_name()))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Writes a minimal GGUF file for tests; `tensors` are (name, dims, type id, bytes).
    pub(crate) fn write_gguf(
        path: &Path,
        meta: &[(&str, MetaValue)],
        tensors: &[(&str, Vec<usize>, u32, Vec<u8>)],
    ) {
        fn put_str(b: &mut Vec<u8>, s: &str) {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        fn put_val(b: &mut Vec<u8>, v: &MetaValue) {
            match v {
                MetaValue::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
                MetaValue::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
                MetaValue::Bool(x) => b.push(*x as u8),
                MetaValue::String(s) => put_str(b, s),
                MetaValue::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
                MetaValue::Array(a) => {
                    let t = a.first().map(ty_of).unwrap_or(4);
                    b.extend_from_slice(&t.to_le_bytes());
                    b.extend_from_slice(&(a.len() as u64).to_le_bytes());
                    for x in a {
                        put_val(b, x);
                    }
                }
                MetaValue::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
                other => panic!("test writer does not handle {other:?}"),
            }
        }
        fn ty_of(v: &MetaValue) -> u32 {
            match v {
                MetaValue::U32(_) => 4,
                MetaValue::I32(_) => 5,
                MetaValue::F32(_) => 6,
                MetaValue::Bool(_) => 7,
                MetaValue::String(_) => 8,
                MetaValue::Array(_) => 9,
                MetaValue::U64(_) => 10,
                other => panic!("test writer does not handle {other:?}"),
            }
        }
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        for (k, v) in meta {
            put_str(&mut b, k);
            b.extend_from_slice(&ty_of(v).to_le_bytes());
            put_val(&mut b, v);
        }
        let mut offset = 0usize;
        let mut offsets = vec![];
        for (name, dims, ty, data) in tensors {
            put_str(&mut b, name);
            b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(offset as u64).to_le_bytes());
            offsets.push(offset);
            offset += data.len().div_ceil(32) * 32;
        }
        while b.len() % 32 != 0 {
            b.push(0);
        }
        let start = b.len();
        for ((_, _, _, data), off) in tensors.iter().zip(offsets) {
            b.resize(start + off, 0);
            b.extend_from_slice(data);
        }
        let mut f = std::fs::File::create(path).unwrap();
        f.write_all(&b).unwrap();
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        write_gguf(
            &p,
            &[
                ("general.architecture", MetaValue::String("llama".into())),
                ("llama.block_count", MetaValue::U32(2)),
                (
                    "tokenizer.ggml.tokens",
                    MetaValue::Array(vec![
                        MetaValue::String("a".into()),
                        MetaValue::String("b".into()),
                    ]),
                ),
            ],
            &[("w", vec![2, 3], 0, f32_bytes(&[1., 2., 3., 4., 5., 6.]))],
        );
        let g = GgufFile::open(&p).unwrap();
        assert_eq!(g.str("general.architecture").unwrap(), "llama");
        assert_eq!(g.u64("llama.block_count").unwrap(), 2);
        assert_eq!(
            g.str_array("tokenizer.ggml.tokens").unwrap(),
            vec!["a", "b"]
        );
        let t = g.tensor("w").unwrap();
        assert_eq!(t.shape(), vec![3, 2]);
        assert_eq!(g.tensor_bytes(t).unwrap().len(), 24);
        let err = g.u64("general.architecture").unwrap_err().to_string();
        assert!(err.contains("general.architecture"), "{err}");
        assert!(g.u64("nope").unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        write_gguf(
            &p,
            &[("general.architecture", MetaValue::String("llama".into()))],
            &[("w", vec![4], 0, f32_bytes(&[1., 2., 3., 4.]))],
        );
        let full = std::fs::read(&p).unwrap();
        for cut in 0..full.len() {
            let q = dir.path().join("cut.gguf");
            std::fs::write(&q, &full[..cut]).unwrap();
            let r = GgufFile::open(&q);
            assert!(
                r.is_err(),
                "truncated at {cut} of {} was accepted",
                full.len()
            );
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains("cut.gguf"), "{msg}");
        }
        GgufFile::open(&p).unwrap();
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&(u64::MAX / 2).to_le_bytes()); // key length
        std::fs::write(&p, &b).unwrap();
        let msg = GgufFile::open(&p).unwrap_err().to_string();
        assert!(msg.contains("cannot fit"), "{msg}");

        // A header claiming 2^40 tensors is an error naming the count, not an allocation.
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        let msg = GgufFile::open(&p).unwrap_err().to_string();
        assert!(msg.contains("tensor count says 1099511627776"), "{msg}");

        // Arrays whose elements really are in the file, but more of them than any vocabulary.
        let n = MAX_METADATA_VALUES + 1;
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b'k');
        b.extend_from_slice(&9u32.to_le_bytes()); // array
        b.extend_from_slice(&0u32.to_le_bytes()); // of u8
        b.extend_from_slice(&(n as u64).to_le_bytes());
        b.resize(b.len() + n, 0);
        std::fs::write(&p, &b).unwrap();
        let msg = GgufFile::open(&p).unwrap_err().to_string();
        assert!(msg.contains("more than 4194304 values"), "{msg}");
    }

    #[test]
    fn bad_magic_and_unknown_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        std::fs::write(&p, b"GGML\x03\0\0\0").unwrap();
        assert!(
            GgufFile::open(&p)
                .unwrap_err()
                .to_string()
                .contains("not a GGUF file")
        );
        write_gguf(
            &p,
            &[],
            &[("blk.0.attn_q.weight", vec![32], 13, vec![0u8; 176])],
        );
        let g = GgufFile::open(&p).unwrap();
        let t = g.tensor("blk.0.attn_q.weight").unwrap();
        let msg = t.ty().unwrap_err().to_string();
        assert!(
            msg.contains("blk.0.attn_q.weight") && msg.contains("Q5_K"),
            "{msg}"
        );
        assert!(GgufFile::open(dir.path().join("missing.gguf")).is_err());
    }
}
