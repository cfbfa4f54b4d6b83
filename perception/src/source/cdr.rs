//! Reading ROS 2 image messages from their wire format: OMG CDR (XCDR1) as rmw writes it — a
//! 4-byte encapsulation header (big- or little-endian plain CDR) followed by the fields, each
//! primitive aligned to its size from the start of the body. Only what images need:
//! `sensor_msgs/msg/Image` and `sensor_msgs/msg/CompressedImage`.

/// Why a CDR payload could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CdrError {
    /// The payload ended early.
    #[error("CDR payload ends at byte {len} while reading {field} (needs {needed} more bytes)")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Payload length.
        len: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// The encapsulation header names a representation we do not read.
    #[error(
        "CDR encapsulation {0:#06x} is not plain CDR (expected 0x0000 big-endian or 0x0001 little-endian)"
    )]
    Encapsulation(u16),
    /// A string is not NUL-terminated UTF-8.
    #[error("CDR string field {0} is not NUL-terminated UTF-8")]
    BadString(&'static str),
}

/// A cursor over a CDR body.
pub struct CdrReader<'a> {
    data: &'a [u8],
    pos: usize,
    little: bool,
}

impl<'a> CdrReader<'a> {
    /// Starts after the encapsulation header.
    pub fn new(payload: &'a [u8]) -> Result<CdrReader<'a>, CdrError> {
        if payload.len() < 4 {
            return Err(CdrError::Truncated {
                field: "encapsulation header",
                len: payload.len(),
                needed: 4 - payload.len(),
            });
        }
        let kind = u16::from_be_bytes([payload[0], payload[1]]);
        let little = match kind {
            0x0000 => false,
            0x0001 => true,
            other => return Err(CdrError::Encapsulation(other)),
        };
        Ok(CdrReader {
            data: &payload[4..],
            pos: 0,
            little,
        })
    }

    fn take(&mut self, n: usize, align: usize, field: &'static str) -> Result<&'a [u8], CdrError> {
        let start = self.pos.div_ceil(align) * align;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(CdrError::Truncated {
                field,
                len: self.data.len() + 4,
                needed: (start + n).saturating_sub(self.data.len()),
            })?;
        self.pos = end;
        Ok(&self.data[start..end])
    }

    /// A `uint8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, CdrError> {
        Ok(self.take(1, 1, field)?[0])
    }

    /// A `uint32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, CdrError> {
        let b: [u8; 4] = self
            .take(4, 4, field)?
            .try_into()
            .map_err(|_| CdrError::Truncated {
                field,
                len: self.data.len(),
                needed: 4,
            })?;
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// An `int32`.
    pub fn i32(&mut self, field: &'static str) -> Result<i32, CdrError> {
        Ok(self.u32(field)? as i32)
    }

    /// A `string` (length including the NUL, bytes, NUL).
    pub fn string(&mut self, field: &'static str) -> Result<&'a str, CdrError> {
        let n = self.u32(field)? as usize;
        if n == 0 {
            return Ok("");
        }
        let bytes = self.take(n, 1, field)?;
        let (last, body) = bytes.split_last().ok_or(CdrError::BadString(field))?;
        if *last != 0 {
            return Err(CdrError::BadString(field));
        }
        std::str::from_utf8(body).map_err(|_| CdrError::BadString(field))
    }

    /// A `uint8[]` sequence.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], CdrError> {
        let n = self.u32(field)? as usize;
        self.take(n, 1, field)
    }
}

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Seconds.
    pub sec: i32,
    /// Nanoseconds.
    pub nanosec: u32,
    /// Frame id.
    pub frame_id: String,
}

impl Header {
    /// The stamp in seconds.
    pub fn seconds(&self) -> f64 {
        f64::from(self.sec) + f64::from(self.nanosec) * 1e-9
    }

    fn read(r: &mut CdrReader<'_>) -> Result<Header, CdrError> {
        Ok(Header {
            sec: r.i32("header.stamp.sec")?,
            nanosec: r.u32("header.stamp.nanosec")?,
            frame_id: r.string("header.frame_id")?.to_string(),
        })
    }
}

/// `sensor_msgs/msg/Image`, borrowing its pixel data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMsg<'a> {
    /// Header.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding name.
    pub encoding: String,
    /// Whether multi-byte pixels are big-endian.
    pub is_bigendian: u8,
    /// Row stride in bytes.
    pub step: u32,
    /// Pixels.
    pub data: &'a [u8],
}

impl<'a> ImageMsg<'a> {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &'a [u8]) -> Result<ImageMsg<'a>, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(ImageMsg {
            header: Header::read(&mut r)?,
            height: r.u32("height")?,
            width: r.u32("width")?,
            encoding: r.string("encoding")?.to_string(),
            is_bigendian: r.u8("is_bigendian")?,
            step: r.u32("step")?,
            data: r.bytes("data")?,
        })
    }
}

/// `sensor_msgs/msg/CompressedImage`, borrowing its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedImageMsg<'a> {
    /// Header.
    pub header: Header,
    /// Format, e.g. `jpeg` or `rgb8; jpeg compressed bgr8`.
    pub format: String,
    /// Compressed bytes.
    pub data: &'a [u8],
}

impl<'a> CompressedImageMsg<'a> {
    /// Reads a serialized message.
    pub fn from_cdr(payload: &'a [u8]) -> Result<CompressedImageMsg<'a>, CdrError> {
        let mut r = CdrReader::new(payload)?;
        Ok(CompressedImageMsg {
            header: Header::read(&mut r)?,
            format: r.string("format")?.to_string(),
            data: r.bytes("data")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_image(data_len_field: u32, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0];
        b.extend(7i32.to_le_bytes());
        b.extend(9u32.to_le_bytes());
        b.extend(4u32.to_le_bytes());
        b.extend(b"cam\0");
        b.extend(1u32.to_le_bytes()); // height
        b.extend(2u32.to_le_bytes()); // width
        b.extend(5u32.to_le_bytes());
        b.extend(b"rgb8\0");
        b.push(0); // is_bigendian, then pad to 4
        b.extend([0, 0]);
        b.extend(6u32.to_le_bytes());
        b.extend(data_len_field.to_le_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn reads_an_image_with_alignment_padding() {
        let bytes = le_image(6, &[1, 2, 3, 4, 5, 6]);
        let m = ImageMsg::from_cdr(&bytes).expect("reads");
        assert_eq!(
            m.header,
            Header {
                sec: 7,
                nanosec: 9,
                frame_id: "cam".into()
            }
        );
        assert_eq!(
            (m.height, m.width, m.step, m.encoding.as_str()),
            (1, 2, 6, "rgb8")
        );
        assert_eq!(m.data, &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn truncated_and_lying_payloads_are_errors() {
        let bytes = le_image(1000, &[1, 2, 3]);
        let e = ImageMsg::from_cdr(&bytes).unwrap_err();
        assert!(
            matches!(e, CdrError::Truncated { field: "data", .. }),
            "{e}"
        );
        for cut in 0..bytes.len() - 3 {
            assert!(ImageMsg::from_cdr(&bytes[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(
            ImageMsg::from_cdr(&[0, 3, 0, 0, 1]).unwrap_err(),
            CdrError::Encapsulation(3)
        );
        let mut bad = le_image(6, &[0; 6]);
        bad[4 + 12 + 3] = b'x'; // frame_id loses its NUL
        assert_eq!(
            ImageMsg::from_cdr(&bad).unwrap_err(),
            CdrError::BadString("header.frame_id")
        );
    }
}
