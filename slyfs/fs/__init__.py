"""The FUSE layer: pyfuse3 operations over nodes (inodes, handles, kernel-cache hints), mounting and
unmounting. It knows nodes and the writable-area interface of `slyfs.vfs.staged`; no formats and no
import logic. Every handler goes through one errno boundary (`errors.errno_boundary`)."""
