import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

// DESIGN.md's one-way layers, checked on the import graph of the shipped sources (tests may reach
// across layers: they drive the lab with the client, which is the point of them).
//   cli → (config, jobs, replication) → delta → (xapi, vhd);  lab → vhd only.

const srcRoot = dirname(fileURLToPath(import.meta.url))

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : []
  })
}

/** `src`-relative path → the `src`-relative paths it imports (static, dynamic and type-only). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sourceFiles(srcRoot)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
    const targets = importedFiles
      .map(({ fileName }) => fileName)
      .filter(name => name.startsWith('.'))
      .map(name => relative(srcRoot, resolve(dirname(file), name)).replace(/\.js$/, '.ts'))
    graph.set(relative(srcRoot, file), targets)
  }
  return graph
}

/** The top-level module a file belongs to: `cli`, `lab`, … or `errors.ts` for a root file. */
function layer(path: string): string {
  return path.split('/')[0]!
}

const graph = importGraph()
const edges = [...graph].flatMap(([from, targets]) => targets.map(to => ({ from, to })))

/** What each layer may import besides itself. Anything not listed is a backwards import. */
const allowed: Record<string, readonly string[]> = {
  cli: ['config', 'jobs', 'replication', 'recovery', 'delta', 'xapi', 'vhd', 'lab', 'errors.ts'],
  config: ['xapi', 'errors.ts'],
  jobs: ['config', 'xapi', 'errors.ts'],
  replication: ['config', 'jobs', 'delta', 'xapi', 'vhd', 'errors.ts'],
  recovery: ['config', 'jobs', 'replication', 'delta', 'xapi', 'vhd', 'errors.ts'],
  delta: ['xapi', 'vhd', 'errors.ts'],
  xapi: ['vhd', 'errors.ts'],
  // the VHD format library is shared by both sides; its VhdError is part of the one hierarchy
  vhd: ['errors.ts'],
  lab: ['vhd'],
  'errors.ts': [],
}

describe('module boundaries', () => {
  it('sees the source tree (a broken walk would make every rule below pass vacuously)', () => {
    expect(graph.size).toBeGreaterThan(100)
    expect(edges.some(e => layer(e.from) === 'cli' && layer(e.to) === 'replication')).toBe(true)
  })

  it('knows every top-level module', () => {
    expect([...new Set([...graph.keys()].map(layer))].filter(name => !(name in allowed))).toEqual([])
  })

  it('has dependencies that point one way only (DESIGN.md: cli → replication → delta → xapi, vhd; lab → vhd)', () => {
    const backwards = edges
      .filter(({ from, to }) => layer(from) !== layer(to) && !allowed[layer(from)]!.includes(layer(to)))
      .map(({ from, to }) => `${from} → ${to}`)
    expect(backwards).toEqual([])
  })

  it('keeps the lab and the client apart: they meet only over the wire', () => {
    const crossing = edges
      .filter(({ from, to }) => (layer(from) === 'lab') !== (layer(to) === 'lab') && layer(from) !== 'cli')
      .filter(({ from, to }) => !(layer(from) === 'lab' && layer(to) === 'vhd'))
      .map(({ from, to }) => `${from} → ${to}`)
    expect(crossing).toEqual([])
  })

  it('has no import cycles', () => {
    const cycles: string[] = []
    const state = new Map<string, 'open' | 'done'>()
    const stack: string[] = []
    const visit = (node: string): void => {
      state.set(node, 'open')
      stack.push(node)
      for (const next of graph.get(node) ?? []) {
        if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '))
        else if (!state.has(next)) visit(next)
      }
      stack.pop()
      state.set(node, 'done')
    }
    for (const node of graph.keys()) if (!state.has(node)) visit(node)
    expect(cycles).toEqual([])
  })
})
