import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { exitCodeFor, exitCodeOfCategory } from './cli/exit-codes.js'
import { ERROR_CODES, XapiError, vmNotFound, type ErrorCategory, type ErrorCode } from './errors.js'

// The table in errors.ts is the contract: every code the sources throw is in it, under the
// category of the class that throws it (one code, one exit code), nothing in it is dead, and the
// README's "Error codes" table says the same. The lab is a server with its own fault type: its
// codes reach the table only through the CLI's `xen-cr lab`, whose mapping the compiler checks.

const srcRoot = dirname(fileURLToPath(import.meta.url))

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : []
  })
}

const parsed = sourceFiles(srcRoot).map(path => ({
  file: relative(srcRoot, path),
  source: ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true),
}))

function walk(node: ts.Node, visit: (node: ts.Node) => void): void {
  visit(node)
  node.forEachChild(child => walk(child, visit))
}

function stringsIn(node: ts.Node): string[] {
  const out: string[] = []
  walk(node, n => {
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) out.push(n.text)
  })
  return out
}

/** The category of each class whose first constructor argument is one of our codes. */
function codeTakingClasses(): Map<string, ErrorCategory> {
  const classes = new Map<string, ErrorCategory>([
    ['UsageError', 'usage'],
    ['ConfigError', 'config'],
    ['ConnectionError', 'connection'],
    ['LeaseError', 'lease'],
    ['ValidationError', 'validation'],
    ['OperationError', 'failure'],
    ['VhdError', 'failure'],
  ])
  const heritage: { name: string; base: string }[] = []
  for (const { source } of parsed) {
    walk(source, node => {
      if (!ts.isClassDeclaration(node) || node.name === undefined) return
      const base = node.heritageClauses?.find(clause => clause.token === ts.SyntaxKind.ExtendsKeyword)?.types[0]
      if (base !== undefined) heritage.push({ name: node.name.text, base: base.expression.getText() })
    })
  }
  // subclasses of subclasses (SeedRefusal extends ValidationError, …)
  for (let grew = true; grew;) {
    grew = false
    for (const { name, base } of heritage) {
      const category = classes.get(base)
      if (category !== undefined && !classes.has(name)) {
        classes.set(name, category)
        grew = true
      }
    }
  }
  return classes
}

interface Construction {
  readonly code: string
  readonly where: string
  /** the category of the class built, when it is a class */
  readonly category?: ErrorCategory
}

/**
 * Every code the sources build outside the lab: `new XxxError('CODE', …)` (every string in the
 * first argument, so `code ?? 'DEFAULT'` counts), a CLI `error` event, and an `error: { code }`
 * of a VM's result.
 */
function constructions(): Construction[] {
  const classes = codeTakingClasses()
  const out: Construction[] = []
  for (const { file, source } of parsed) {
    if (file.startsWith('lab/')) continue
    walk(source, node => {
      const where = `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
      if (ts.isNewExpression(node) && ts.isIdentifier(node.expression)) {
        const category = classes.get(node.expression.text)
        const first = node.arguments?.[0]
        if (category === undefined || first === undefined) return
        for (const code of stringsIn(first)) out.push({ code, where, category })
      }
      if (ts.isObjectLiteralExpression(node)) {
        const literal = (name: string): string | undefined => {
          const property = node.properties.find(
            p => ts.isPropertyAssignment(p) && ts.isIdentifier(p.name) && p.name.text === name,
          )
          return property !== undefined && ts.isPropertyAssignment(property) && ts.isStringLiteral(property.initializer)
            ? property.initializer.text
            : undefined
        }
        const code = literal('code')
        if (code === undefined) return
        const parent = node.parent
        const isErrorEvent = literal('kind') === 'error'
        const isResultError = ts.isPropertyAssignment(parent) && parent.name.getText() === 'error'
        if (isErrorEvent || isResultError) out.push({ code, where })
      }
    })
  }
  return out
}

const built = constructions()

describe('ERROR_CODES', () => {
  it('sees the constructions (a broken scan would make every check below pass vacuously)', () => {
    expect(built.length).toBeGreaterThan(150)
    expect(built).toContainEqual({ code: 'SEED_NO_DISKS', where: expect.any(String) as string, category: 'validation' })
    expect(built.map(c => c.code)).toContain('UNEXPECTED')
  })

  it('holds every code thrown outside the lab', () => {
    const missing = built.filter(c => !(c.code in ERROR_CODES)).map(c => `${c.code} (${c.where})`)
    expect(missing).toEqual([])
  })

  it('gives each code the category of every class that throws it: one code, one exit code', () => {
    const mismatched = built
      .filter(c => c.category !== undefined && c.code in ERROR_CODES)
      .filter(c => ERROR_CODES[c.code as ErrorCode].category !== c.category)
      .map(c => `${c.code} is ${ERROR_CODES[c.code as ErrorCode].category}, thrown as ${c.category} at ${c.where}`)
    expect(mismatched).toEqual([])
  })

  it('has no dead entry: each code is spelled somewhere in the sources besides the table', () => {
    const spelled = new Set<string>()
    for (const { source } of parsed) {
      const visit = (node: ts.Node): void => {
        if (ts.isVariableDeclaration(node) && node.name.getText() === 'ERROR_CODES') return
        if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) spelled.add(node.text)
        node.forEachChild(visit)
      }
      visit(source)
    }
    expect(Object.keys(ERROR_CODES).filter(code => !spelled.has(code))).toEqual([])
  })

  it('has one-line meanings that fit a Markdown table cell', () => {
    const bad = Object.entries(ERROR_CODES)
      .filter(([, { meaning }]) => meaning.includes('|') || meaning.includes('\n') || meaning.trim() === '')
      .map(([code]) => code)
    expect(bad).toEqual([])
  })
})

describe('vmNotFound', () => {
  it('is the one construction of VM_NOT_FOUND', () => {
    const error = vmNotFound('abc', 'source pool "p"', 'check the uuid')
    expect(error).toMatchObject({ code: 'VM_NOT_FOUND', category: 'validation' })
    expect(error.message).toBe('VM abc is not on source pool "p"; check the uuid')
    expect(built.filter(c => c.code === 'VM_NOT_FOUND').map(c => c.where)).toEqual([
      expect.stringMatching(/^errors\.ts:/) as string,
    ])
  })
})

describe('the README', () => {
  /** The rows the README's "Error codes" section must have, in the table's order. */
  function expectedRows(): string[] {
    const xapiExit = exitCodeFor(new XapiError('ANY', [], 'VM.start'))
    return [
      '| code | exit | meaning |',
      '| --- | --- | --- |',
      ...Object.entries(ERROR_CODES).map(
        ([code, { category, meaning }]) => `| \`${code}\` | ${exitCodeOfCategory(category)} | ${meaning} |`,
      ),
      `| \`XAPI_<code>\` | ${xapiExit} | a XAPI server refused a call: \`<code>\` is its own error code, unchanged, and its parameters follow in the message |`,
    ]
  }

  it('lists every code with its exit code and meaning, as ERROR_CODES does', () => {
    const readme = readFileSync(join(srcRoot, '..', 'README.md'), 'utf8')
    const section = /^## Error codes\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(readme)
    expect(section, 'README.md has no "## Error codes" section').not.toBeNull()
    const rows = section![1]!.split('\n').filter(line => line.startsWith('|'))
    // On a mismatch the diff shows the exact rows to paste into README.md.
    expect(rows).toEqual(expectedRows())
  })
})
