"""BLAS routines numba does not expose (?trmm, ?syrk), callable from our kernels.

numba's ``np.dot`` reaches only dgemm. The full-covariance kernel's two products have
structure dgemm ignores: the whitening multiplies by a triangular factor (dtrmm) and the
scatter matrix is symmetric (dsyrk); each does half of dgemm's flops, and from d = 16 on
OpenBLAS runs them at a dgemm-equivalent 1.1-1.6x dgemm's own rate (measured on a
2-core EPYC, one thread, blocks of 256-1024 rows).

The routines are scipy's (``scipy.linalg.cython_blas``, the same OpenBLAS numba's dgemm
calls). Kernels call them through external symbols, ``streammix_dtrmm`` and
``streammix_dsyrk``, bound to scipy's addresses when this module is imported: the
cached object code holds the names, not this process's addresses, so it stays valid
in every later process (numba binds its own BLAS helpers the same way).

Arrays are C-ordered; BLAS sees them as their Fortran transposes, hence the
left/right and upper/lower swaps documented on each call. Each call takes arrays of one
dtype: float64 calls the d-routine, float32 the s-routine (``strmm``/``ssyrk``, for the
opt-in float32 E-step, at about twice the rate); any other combination does not compile.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

_SYMBOLS = {"dtrmm": "streammix_dtrmm", "dsyrk": "streammix_dsyrk",
            "strmm": "streammix_strmm", "ssyrk": "streammix_ssyrk"}
for _routine, _symbol in _SYMBOLS.items():
    llvm.add_symbol(_symbol, get_cython_function_address("scipy.linalg.cython_blas",
                                                         _routine))

_I8P = ir.IntType(8).as_pointer()
_I32P = ir.IntType(32).as_pointer()


def _real(dtype):
    """(routine prefix, LLVM scalar type) of a float64 or float32 array's BLAS, or None
    (then the intrinsic does not type: nothing else may reach BLAS)."""
    if dtype == types.float64:
        return "d", ir.DoubleType()
    if dtype == types.float32:
        return "s", ir.FloatType()
    return None


def _same_real(*arrays):
    """The shared ``_real`` of the arrays' dtypes, or None if they differ or are not
    float32/float64."""
    kinds = {a.dtype for a in arrays}
    return _real(arrays[0].dtype) if len(kinds) == 1 else None


def _const_ptr(builder, ty, value):
    """A stack slot holding ``value``: BLAS takes every scalar by reference."""
    return cgutils.alloca_once_value(builder, ir.Constant(ty, value))


def _int_ptr(builder, value):
    """A stack slot holding the int32 of an int64 value (LP64 BLAS)."""
    return cgutils.alloca_once_value(builder, builder.trunc(value, ir.IntType(32)))


def _trmm(builder, real, side, uplo, trans, m, n, a, lda, b, ldb):
    """?trmm(side, uplo, trans, 'N', m, n, 1, a, lda, b, ldb): b := op(a) b or b op(a),
    in place; real: ``_real`` of the arrays; m, n, lda, ldb are int64 values, a and b
    data pointers."""
    prefix, scalar = real
    fp = scalar.as_pointer()
    i8 = ir.IntType(8)
    fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I8P, _I8P, _I32P, _I32P,
                                           fp, fp, _I32P, fp, _I32P])
    fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[prefix + "trmm"])
    chars = [_const_ptr(builder, i8, ord(c)) for c in (side, uplo, trans, "N")]
    ints = [_int_ptr(builder, v) for v in (m, n, lda, ldb)]
    alpha = _const_ptr(builder, scalar, 1.0)
    builder.call(fn, [*chars, ints[0], ints[1], alpha, a, ints[2], b, ints[3]])


def _syrk(builder, real, trans, n, k, a, lda, c):
    """?syrk('U', trans, n, k, 1, a, lda, 1, c, n): c += a a^T or a^T a, Fortran-upper
    triangle; real: ``_real`` of the arrays; n, k, lda are int64 values, a and c data
    pointers."""
    prefix, scalar = real
    fp = scalar.as_pointer()
    i8 = ir.IntType(8)
    fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I32P, _I32P, fp, fp,
                                           _I32P, fp, fp, _I32P])
    fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[prefix + "syrk"])
    uplo, tr = (_const_ptr(builder, i8, ord(ch)) for ch in ("U", trans))
    n_, k_, lda_ = (_int_ptr(builder, v) for v in (n, k, lda))
    one = _const_ptr(builder, scalar, 1.0)
    builder.call(fn, [uplo, tr, n_, k_, one, a, lda_, one, c, n_])


def _arrays(context, builder, signature, args):
    """The array structures of an intrinsic's first and third arguments."""
    first = context.make_array(signature.args[0])(context, builder, args[0])
    third = context.make_array(signature.args[2])(context, builder, args[2])
    return first, third


@intrinsic
def trmm_upper_right(typingctx, Z, b, U):
    """Z[:b] := Z[:b] @ U for U (d x d, C order) upper triangular, in place.

    Z (at least b x d, C order) as Fortran is Z^T (d x b) and U as Fortran is U^T,
    lower triangular: dtrmm('L', 'L', 'N', 'N', d, b, 1, U^T, d, Z^T, d) computes
    U^T Z^T = (Z U)^T, i.e. Z U in C order.
    """
    def codegen(context, builder, signature, args):
        z, u = _arrays(context, builder, signature, args)
        d = builder.extract_value(u.shape, 0)
        _trmm(builder, real, "L", "L", "N", d, args[1], u.data, d, z.data, d)

    real = _same_real(Z, U)
    return None if real is None else (types.void(Z, types.int64, U), codegen)


@intrinsic
def syrk_accumulate(typingctx, W, b, C):
    """C += W[:b]^T @ W[:b], lower triangle (C order) only; C is d x d, C order.

    W as Fortran is W^T (d x b), so dsyrk('U', 'N', d, b, 1, W^T, d, 1, C, d) adds
    W^T W to the Fortran-upper triangle of C, which is C order's lower triangle (row
    >= column). The other triangle is left as it was: callers mirror it at the end.
    """
    def codegen(context, builder, signature, args):
        w, c = _arrays(context, builder, signature, args)
        d = builder.extract_value(c.shape, 0)
        _syrk(builder, real, "N", d, args[1], w.data, d, c.data)

    real = _same_real(W, C)
    return None if real is None else (types.void(W, types.int64, C), codegen)


@intrinsic
def trmm_upper_right_t(typingctx, ZT, b, U):
    """ZT[:, :b] := (ZT[:, :b]^T @ U)^T for U (d x d, C order) upper triangular, in place:
    the rows-in-columns layout of the hand-loop kernels (ZT is d x B, C order, one
    sample per column).

    ZT as Fortran is a B x d matrix of samples in rows (leading dimension B), U as
    Fortran is U^T: dtrmm('R', 'L', 'T', 'N', b, d, 1, U^T, d, ZT, B) computes
    Z[:b] (U^T)^T = Z[:b] U.
    """
    def codegen(context, builder, signature, args):
        z, u = _arrays(context, builder, signature, args)
        d = builder.extract_value(u.shape, 0)
        width = builder.extract_value(z.shape, 1)
        _trmm(builder, real, "R", "L", "T", args[1], d, u.data, d, z.data, width)

    real = _same_real(ZT, U)
    return None if real is None else (types.void(ZT, types.int64, U), codegen)


@intrinsic
def syrk_accumulate_t(typingctx, ZT, b, C):
    """C += ZT[:, :b] @ ZT[:, :b]^T, lower triangle (C order) only; ZT is d x B (C
    order, one sample per column), C is d x d (C order).

    ZT as Fortran is Z (B x d, leading dimension B): dsyrk('U', 'T', d, b, 1, Z, B, 1,
    C, d) adds Z[:b]^T Z[:b] to the Fortran-upper triangle of C, C order's lower one.
    """
    def codegen(context, builder, signature, args):
        z, c = _arrays(context, builder, signature, args)
        d = builder.extract_value(c.shape, 0)
        width = builder.extract_value(z.shape, 1)
        _syrk(builder, real, "T", d, args[1], z.data, width, c.data)

    real = _same_real(ZT, C)
    return None if real is None else (types.void(ZT, types.int64, C), codegen)
