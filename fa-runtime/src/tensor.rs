//! Device tensors: a contiguous row-major buffer with a shape, and the
//! type-erased views the generated launchers hand to the runtime.

use crate::device::Device;
use crate::error::{FaError, Result};
use cudarc::driver::CudaSlice;
use std::marker::PhantomData;

/// Element type tag of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElemType {
    F16,
    Bf16,
    F8E4M3,
    F8E5M2,
    F32,
    I32,
    I64,
}

impl ElemType {
    pub const fn name(self) -> &'static str {
        match self {
            ElemType::F16 => "f16",
            ElemType::Bf16 => "bf16",
            ElemType::F8E4M3 => "e4m3 (F8E4M3)",
            ElemType::F8E5M2 => "e5m2 (F8E5M2)",
            ElemType::F32 => "f32",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
        }
    }
    pub const fn size_bytes(self) -> usize {
        match self {
            ElemType::F8E4M3 | ElemType::F8E5M2 => 1,
            ElemType::F16 | ElemType::Bf16 => 2,
            ElemType::F32 | ElemType::I32 => 4,
            ElemType::I64 => 8,
        }
    }
    /// The tag of a cell's Q/K/V element type.
    pub const fn of_dtype(d: fa_spec::Dtype) -> ElemType {
        match d {
            fa_spec::Dtype::F16 => ElemType::F16,
            fa_spec::Dtype::Bf16 => ElemType::Bf16,
            fa_spec::Dtype::E4m3 => ElemType::F8E4M3,
            fa_spec::Dtype::E5m2 => ElemType::F8E5M2,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
    impl Sealed for float8::F8E4M3 {}
    impl Sealed for float8::F8E5M2 {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

/// Types a [`Tensor`] can hold. Sealed: every implementor is plain old data
/// (no padding, every bit pattern valid), which the byte copies rely on.
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    const ELEM: ElemType;
    /// Value as f32 (for tests and the reference).
    fn to_f32(self) -> f32;
    /// Nearest value to `x` (round to nearest even).
    fn from_f32(x: f32) -> Self;
}

impl Element for half::f16 {
    const ELEM: ElemType = ElemType::F16;
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
    fn from_f32(x: f32) -> Self {
        half::f16::from_f32(x)
    }
}
impl Element for half::bf16 {
    const ELEM: ElemType = ElemType::Bf16;
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn from_f32(x: f32) -> Self {
        half::bf16::from_f32(x)
    }
}
impl Element for float8::F8E4M3 {
    const ELEM: ElemType = ElemType::F8E4M3;
    fn to_f32(self) -> f32 {
        float8::F8E4M3::to_f32(&self)
    }
    fn from_f32(x: f32) -> Self {
        float8::F8E4M3::from_f32(x)
    }
}
impl Element for float8::F8E5M2 {
    const ELEM: ElemType = ElemType::F8E5M2;
    fn to_f32(self) -> f32 {
        float8::F8E5M2::to_f32(&self)
    }
    fn from_f32(x: f32) -> Self {
        float8::F8E5M2::from_f32(x)
    }
}
impl Element for f32 {
    const ELEM: ElemType = ElemType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(x: f32) -> Self {
        x
    }
}
impl Element for i32 {
    const ELEM: ElemType = ElemType::I32;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(x: f32) -> Self {
        x as i32
    }
}
impl Element for i64 {
    const ELEM: ElemType = ElemType::I64;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(x: f32) -> Self {
        x as i64
    }
}

/// Bytes of a slice of elements.
pub(crate) fn as_bytes<T: Element>(s: &[T]) -> &[u8] {
    // SAFETY: `Element` is sealed to padding-free POD types, so every byte of
    // the slice is initialised; the length is the slice's size in bytes and
    // u8 has alignment 1.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

/// Elements from bytes (`bytes.len()` must be a multiple of the size).
pub(crate) fn from_bytes<T: Element>(bytes: &[u8]) -> Vec<T> {
    let n = bytes.len() / std::mem::size_of::<T>();
    let mut v: Vec<T> = Vec::with_capacity(n);
    // SAFETY: the destination has capacity for n elements = n*size bytes,
    // which is at most bytes.len(); every bit pattern is a valid `T` for the
    // sealed POD types, so setting the length after the copy is sound.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), n * std::mem::size_of::<T>());
        v.set_len(n);
    }
    v
}

/// A contiguous, row-major device tensor of `T`.
#[derive(Debug)]
pub struct Tensor<T: Element> {
    pub(crate) buf: CudaSlice<u8>,
    /// Raw device address of `buf` (fixed for its life).
    pub(crate) ptr: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) device_id: u64,
    pub(crate) ordinal: usize,
    pub(crate) _t: PhantomData<T>,
}

impl<T: Element> Tensor<T> {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn num_bytes(&self) -> usize {
        self.len() * std::mem::size_of::<T>()
    }
    /// Ordinal of the device holding it.
    pub fn device_ordinal(&self) -> usize {
        self.ordinal
    }
    /// Raw device address (for interop; valid while the tensor lives).
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Type-erased view for [`crate::__private::ForwardCall`].
    pub fn as_ref(&self) -> TensorRef<'_> {
        TensorRef { ptr: self.ptr, shape: &self.shape, elem: T::ELEM, device_id: self.device_id, ordinal: self.ordinal }
    }
    /// Type-erased mutable view for [`crate::__private::ForwardCall`].
    pub fn as_mut(&mut self) -> TensorMut<'_> {
        TensorMut { ptr: self.ptr, shape: &self.shape, elem: T::ELEM, device_id: self.device_id, ordinal: self.ordinal }
    }

    /// Copies the tensor to the host (waits for the device's stream).
    pub fn to_host(&self, dev: &Device) -> Result<Vec<T>> {
        dev.check_same("tensor", self.device_id, self.ordinal)?;
        let bytes = dev.copy_to_host(&self.buf, self.num_bytes())?;
        Ok(from_bytes(&bytes))
    }

    /// Same buffer, new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Tensor<T>> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(FaError::Shape {
                arg: "shape",
                expected: format!("{} elements", self.len()),
                found: format!("{shape:?} ({n} elements)"),
            });
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
}

/// A borrowed, type-erased tensor (input).
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub(crate) ptr: u64,
    pub(crate) shape: &'a [usize],
    pub(crate) elem: ElemType,
    pub(crate) device_id: u64,
    pub(crate) ordinal: usize,
}

/// A mutably borrowed, type-erased tensor (output).
#[derive(Debug)]
pub struct TensorMut<'a> {
    pub(crate) ptr: u64,
    pub(crate) shape: &'a [usize],
    pub(crate) elem: ElemType,
    pub(crate) device_id: u64,
    pub(crate) ordinal: usize,
}

impl<'a> TensorRef<'a> {
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }
    pub fn elem(&self) -> ElemType {
        self.elem
    }
}
impl<'a> TensorMut<'a> {
    pub fn shape(&self) -> &[usize] {
        self.shape
    }
    pub fn elem(&self) -> ElemType {
        self.elem
    }
}
