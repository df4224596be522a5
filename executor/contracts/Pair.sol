// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title Constant-product pool (Uniswap-v2 style, 0.3% fee, no LP token)
/// @notice Used by chaind's executor tests and benchmarks.
/// @dev Token addresses live in storage rather than immutables so that every
///      pool has identical runtime bytecode. The storage layout is part of the
///      contract's interface (Rust code prefills it) and compile.js fails the
///      build if it drifts.
///        slot 0: address token0
///        slot 1: address token1
///        slot 2: uint256 reserve0
///        slot 3: uint256 reserve1
///      Do not add, remove or reorder state variables.
contract Pair {
    address public token0;
    address public token1;
    uint256 public reserve0;
    uint256 public reserve1;

    event Swap(address indexed sender, uint256 amountIn, uint256 amountOut, bool zeroForOne);

    constructor(address _token0, address _token1) {
        token0 = _token0;
        token1 = _token1;
    }

    function getReserves() external view returns (uint256, uint256) {
        return (reserve0, reserve1);
    }

    /// @notice Pulls both amounts from the caller (who must have approved the
    ///         pair) and adds them to the reserves.
    function addLiquidity(uint256 amount0, uint256 amount1) external {
        require(IERC20(token0).transferFrom(msg.sender, address(this), amount0), "Pair: transferFrom failed");
        require(IERC20(token1).transferFrom(msg.sender, address(this), amount1), "Pair: transferFrom failed");
        reserve0 += amount0;
        reserve1 += amount1;
    }

    /// @notice Swaps `amountIn` of token0 for token1 (`zeroForOne`) or the
    ///         reverse. The caller must have approved the pair for `amountIn`.
    function swap(uint256 amountIn, bool zeroForOne, uint256 minAmountOut) external returns (uint256 amountOut) {
        (address tokenIn, address tokenOut, uint256 reserveIn, uint256 reserveOut) =
            zeroForOne ? (token0, token1, reserve0, reserve1) : (token1, token0, reserve1, reserve0);
        require(reserveIn > 0 && reserveOut > 0, "Pair: no liquidity");

        uint256 amountInWithFee = amountIn * 997;
        amountOut = (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
        require(amountOut >= minAmountOut, "Pair: slippage");
        require(amountOut > 0, "Pair: insufficient output");

        require(IERC20(tokenIn).transferFrom(msg.sender, address(this), amountIn), "Pair: transferFrom failed");
        require(IERC20(tokenOut).transfer(msg.sender, amountOut), "Pair: transfer failed");

        if (zeroForOne) {
            reserve0 = reserveIn + amountIn;
            reserve1 = reserveOut - amountOut;
        } else {
            reserve1 = reserveIn + amountIn;
            reserve0 = reserveOut - amountOut;
        }
        emit Swap(msg.sender, amountIn, amountOut, zeroForOne);
    }
}
