/**
 * Which 2 MiB blocks a sampled seed verification compares. An endless loop here is synchronous:
 * no timer, test timeout or abort can fire while it spins (one froze a test worker at full CPU
 * for as long as nobody killed it), so every loop below is bounded whatever the inputs. The file
 * has no imports so that its test can run it in a worker thread it is able to stop.
 */

/**
 * Picks `count` distinct block indexes of a disk of `blocks` blocks, ascending: every block
 * when `count >= blocks`, else one draw of `random` (a number in [0, 1)) per pick. A draw outside
 * [0, 1) is clamped and a draw that is no finite number counts as 0; a collision takes the next
 * free block.
 * @throws RangeError when `blocks` or `count` is not a non-negative safe integer
 */
export function sampleBlocks(blocks: number, count: number, random: () => number): number[] {
  if (!Number.isSafeInteger(blocks) || blocks < 0)
    throw new RangeError(`sampleBlocks: block count must be a non-negative integer, got ${blocks}`)
  if (!Number.isSafeInteger(count) || count < 0)
    throw new RangeError(`sampleBlocks: sample size must be a non-negative integer, got ${count}`)
  if (count >= blocks) return Array.from({ length: blocks }, (_, i) => i)
  const picked = new Set<number>()
  for (let pick = 0; pick < count; pick++) {
    const draw = random()
    // A NaN index would be found again in the set on every probe, and NaN + 1 is NaN: forever.
    let block = Number.isFinite(draw) ? Math.min(blocks - 1, Math.max(0, Math.floor(draw * blocks))) : 0
    // Fewer than `blocks` are picked, so a free one is at most `blocks - 1` steps away.
    while (picked.has(block)) block = (block + 1) % blocks
    picked.add(block)
  }
  return [...picked].sort((a, b) => a - b)
}
