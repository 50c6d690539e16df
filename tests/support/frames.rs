//! Frames written and read byte by byte: every header field under the test's control, lengths
//! that may lie or be non-minimal.

/// The masking key raw clients use (the one from the examples in RFC 6455 5.7).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// How a raw frame encodes its payload length. Anything but `Auto` may lie or be non-minimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// The minimal encoding of the real payload length.
    Auto,
    /// This 7-bit length (0..=125) in the second byte.
    Short(u8),
    /// 126 followed by this 16-bit length.
    Ext16(u16),
    /// 127 followed by this 64-bit length.
    Ext64(u64),
}

/// A frame to write (or one that was read) with every header field under the test's control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 4).
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
    pub len: Len,
}

impl Frame {
    /// A final, masked frame (as a client sends it) with the minimal length encoding.
    pub fn new(opcode: u8, payload: impl AsRef<[u8]>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(MASK),
            payload: payload.as_ref().to_vec(),
            len: Len::Auto,
        }
    }

    pub fn text(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(TEXT, payload)
    }

    pub fn binary(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(BINARY, payload)
    }

    pub fn cont(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(CONTINUATION, payload)
    }

    pub fn ping(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(PING, payload)
    }

    pub fn pong(payload: impl AsRef<[u8]>) -> Frame {
        Frame::new(PONG, payload)
    }

    /// A close frame with a code and a reason.
    pub fn close(code: u16, reason: impl AsRef<[u8]>) -> Frame {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_ref());
        Frame::new(CLOSE, payload)
    }

    pub fn fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }

    pub fn rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }

    pub fn unmasked(mut self) -> Frame {
        self.mask = None;
        self
    }

    pub fn masked(mut self, key: [u8; 4]) -> Frame {
        self.mask = Some(key);
        self
    }

    pub fn len(mut self, len: Len) -> Frame {
        self.len = len;
        self
    }

    /// The frame on the wire. With a `len` other than `Auto` the header says what `len` says,
    /// whatever the payload really is.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0xF)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let n = self.payload.len() as u64;
        let len = match self.len {
            Len::Auto if n < 126 => Len::Short(n as u8),
            Len::Auto if n <= 0xFFFF => Len::Ext16(n as u16),
            Len::Auto => Len::Ext64(n),
            other => other,
        };
        match len {
            Len::Short(v) => out.push(mask_bit | v),
            Len::Ext16(v) => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Len::Ext64(v) => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Len::Auto => unreachable!("resolved above"),
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }

    /// The close code of a close frame's payload, `None` for an empty payload.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        match self.payload.len() {
            0 => None,
            1 => panic!("close payload of one byte"),
            _ => Some(u16::from_be_bytes([self.payload[0], self.payload[1]])),
        }
    }
}

/// Several frames as one byte string, to go out in a single write.
pub fn frames(list: &[Frame]) -> Vec<u8> {
    list.iter().flat_map(Frame::to_bytes).collect()
}
