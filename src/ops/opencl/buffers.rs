//! Device memory: images as device buffers (wrapped in place on devices that share host
//! memory, copied elsewhere), small tables, and the transfers back to the host.

use super::{dev_err, Gpu, RunError};
use crate::image::Image;
use opencl3::memory::{Buffer, ClMem, CL_MAP_READ, CL_MEM_READ_WRITE, CL_MEM_USE_HOST_PTR};
use opencl3::types::{CL_BLOCKING, CL_NON_BLOCKING};

/// Host memory wrapped by a zero-copy buffer. Dropping it first waits for the queue, so
/// that a kernel still running after an error never writes into freed memory.
struct HostMemory {
    data: Vec<u8>,
    queue: opencl3::types::cl_command_queue,
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        // Cheap when the queue is idle, as it is everywhere but on an error path.
        let _ = opencl3::command_queue::finish(self.queue);
    }
}

/// An 8-bit image in device memory.
pub(super) struct DevImage {
    /// Declared first so that it is released before the host memory it may wrap.
    pub(super) buf: Buffer<u8>,
    /// The host memory behind `buf` on zero-copy devices (at least one byte long).
    host: Option<HostMemory>,
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) cn: usize,
}

impl Gpu {
    /// A device buffer of `n` elements (at least one).
    pub(super) fn buffer<T>(&self, n: usize) -> Result<Buffer<T>, RunError> {
        // SAFETY: a fresh buffer of n elements with no host pointer.
        unsafe {
            Buffer::<T>::create(
                &self.context,
                CL_MEM_READ_WRITE,
                n.max(1),
                std::ptr::null_mut(),
            )
        }
        .map_err(|e| dev_err("cannot allocate device memory", e))
    }

    /// A device buffer holding `data`.
    pub(super) fn buffer_from<T: Copy>(&self, data: &[T]) -> Result<Buffer<T>, RunError> {
        let mut b = self.buffer::<T>(data.len())?;
        if !data.is_empty() {
            // SAFETY: the buffer holds data.len() elements; the write is blocking.
            unsafe {
                self.queue
                    .enqueue_write_buffer(&mut b, CL_BLOCKING, 0, data, &[])
            }
            .map_err(|e| dev_err("upload", e))?;
        }
        Ok(b)
    }

    /// A device image holding `data` (w x h x cn bytes): wrapped in place on zero-copy
    /// devices, copied to device memory elsewhere.
    pub(super) fn wrap(
        &self,
        mut data: Vec<u8>,
        w: usize,
        h: usize,
        cn: usize,
    ) -> Result<DevImage, RunError> {
        if !self.zero_copy {
            return Ok(DevImage {
                buf: self.buffer_from(&data)?,
                host: None,
                w,
                h,
                cn,
            });
        }
        if data.is_empty() {
            data.push(0);
        }
        // SAFETY: `data` outlives the buffer: both move into the DevImage, whose `buf` is
        // released first, and the Vec's heap block never moves while it is not resized.
        let buf = unsafe {
            Buffer::<u8>::create(
                &self.context,
                CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR,
                data.len(),
                data.as_mut_ptr().cast(),
            )
        }
        .map_err(|e| dev_err("cannot wrap host memory", e))?;
        Ok(DevImage {
            buf,
            host: Some(HostMemory {
                data,
                queue: self.queue.get(),
            }),
            w,
            h,
            cn,
        })
    }

    /// A new device image for a kernel's output.
    pub(super) fn image(&self, w: usize, h: usize, cn: usize) -> Result<DevImage, RunError> {
        if self.zero_copy {
            self.wrap(vec![0u8; w * h * cn], w, h, cn)
        } else {
            Ok(DevImage {
                buf: self.buffer::<u8>(w * h * cn)?,
                host: None,
                w,
                h,
                cn,
            })
        }
    }

    /// An 8-bit host image on the device (16-bit images stay on the CPU).
    pub(super) fn upload(&self, img: Image) -> Result<DevImage, RunError> {
        let (w, h, cn) = (
            img.width as usize,
            img.height as usize,
            img.channels as usize,
        );
        let data = match img.samples {
            crate::image::Samples::U8(v) => v,
            crate::image::Samples::U16(_) => {
                return Err(RunError::Device("16-bit images stay on the CPU".into()))
            }
        };
        self.wrap(data, w, h, cn)
    }

    /// The device image back on the host.
    pub(super) fn download(&self, d: DevImage) -> Result<Image, RunError> {
        let len = d.w * d.h * d.cn;
        let DevImage {
            buf,
            host,
            w,
            h,
            cn,
        } = d;
        let out = match host {
            Some(mut memory) => {
                // Mapping makes the kernels' writes visible in `data` (the mapped pointer
                // is `data` itself for a CL_MEM_USE_HOST_PTR buffer).
                let mut ptr = std::ptr::null_mut();
                // SAFETY: the buffer is `memory.data.len()` bytes; the map, the unmap and
                // the finish below complete before the data is read.
                unsafe {
                    self.queue.enqueue_map_buffer(
                        &buf,
                        CL_NON_BLOCKING,
                        CL_MAP_READ,
                        0,
                        memory.data.len(),
                        &mut ptr,
                        &[],
                    )
                }
                .map_err(|e| dev_err("map", e))?;
                // SAFETY: `ptr` came from the map above.
                unsafe { self.queue.enqueue_unmap_mem_object(buf.get(), ptr, &[]) }
                    .map_err(|e| dev_err("unmap", e))?;
                self.queue.finish().map_err(|e| dev_err("finish", e))?;
                drop(buf);
                // Only now, with the queue idle and the buffer gone, the memory is ours.
                let mut data = std::mem::take(&mut memory.data);
                data.truncate(len);
                data
            }
            None => {
                let mut out = vec![0u8; len];
                if len > 0 {
                    // SAFETY: `out` has exactly the buffer's size; the read is blocking.
                    unsafe {
                        self.queue
                            .enqueue_read_buffer(&buf, CL_BLOCKING, 0, &mut out, &[])
                    }
                    .map_err(|e| dev_err("download", e))?;
                }
                out
            }
        };
        Ok(Image::from_u8(w as u32, h as u32, cn as u8, out))
    }

    /// Reads a one-element flag buffer and clears it: whether a kernel set it.
    pub(super) fn read_flag(&self, flag: &mut Buffer<i32>) -> Result<bool, RunError> {
        let mut v = [0i32];
        // SAFETY: a one-element buffer; both transfers are blocking.
        unsafe {
            self.queue
                .enqueue_read_buffer(flag, CL_BLOCKING, 0, &mut v, &[])
                .map_err(|e| dev_err("download", e))?;
            self.queue
                .enqueue_write_buffer(flag, CL_BLOCKING, 0, &[0i32], &[])
                .map_err(|e| dev_err("upload", e))?;
        }
        Ok(v[0] != 0)
    }

    /// Waits for every enqueued command.
    pub(super) fn finish(&self) -> Result<(), RunError> {
        self.queue.finish().map_err(|e| dev_err("finish", e))
    }
}
