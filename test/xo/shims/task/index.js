'use strict'
// Shim of @vates/task 0.7 for xen-cr's `npm run test:xo` (the registry lacks the package): a task
// runs a function inside an AsyncLocalStorage context so that static calls (Task.info, warning,
// set, abortSignal) reach the current task; every state change is an event given to the
// onProgress of the root task (start with properties and parentId, info, warning, property, end
// with status and result). A task created inside another without its own onProgress is its
// subtask and shares the parent's abort signal. Written from the package's documented API.
const { AsyncLocalStorage } = require('node:async_hooks')

const STATUS = { ABORTED: 'aborted', ABORTING: 'aborting', FAILURE: 'failure', PENDING: 'pending', SUCCESS: 'success' }
const KEY = '@vates/task@0'
const storage = globalThis[KEY] ?? (globalThis[KEY] = new AsyncLocalStorage())
const current = () => storage.getStore()
let counter = 0

class Task {
  static get abortSignal() {
    return current()?._controller.signal
  }
  static info(message, data) {
    current()?._emit('info', { message, data })
  }
  static warning(message, data) {
    current()?._emit('warning', { message, data })
  }
  static set(name, value) {
    current()?._emit('property', { name, value })
  }
  static run(opts, fn) {
    return new this(opts).run(fn)
  }
  static wrap(opts, fn) {
    if (typeof fn !== 'function') [fn, opts] = [opts, fn]
    return function taskRun(...args) {
      return Task.run(typeof opts === 'function' ? opts.apply(this, args) : opts, () => fn.apply(this, args))
    }
  }

  constructor({ properties, data, onProgress } = {}) {
    this._controller = new AbortController()
    this._properties = { ...(properties ?? data ?? {}) }
    this._status = STATUS.PENDING
    this._started = false
    this._running = false
    this.id = `${Date.now().toString(36)}${(++counter).toString(36)}`
    const parent = current()
    if (onProgress !== undefined) this._onProgress = onProgress
    else if (parent !== undefined) {
      this._onProgress = parent._onProgress
      this._properties.parentId = parent.id
      parent._controller.signal.addEventListener('abort', () =>
        this._controller.abort(parent._controller.signal.reason),
      )
    } else this._onProgress = () => {}
    this._controller.signal.addEventListener('abort', () => {
      if (this._status === STATUS.PENDING) this._status = this._running ? STATUS.ABORTING : STATUS.ABORTED
    })
  }
  get status() {
    return this._status
  }
  _emit(type, data) {
    this._onProgress({ ...data, id: this.id, timestamp: Date.now(), type })
  }
  abort(reason) {
    this._controller.abort(reason)
  }
  start() {
    if (!this._started) {
      this._started = true
      this._emit('start', { properties: this._properties, parentId: this._properties.parentId })
    }
  }
  info(message, data) {
    this._emit('info', { message, data })
  }
  warning(message, data) {
    this._emit('warning', { message, data })
  }
  set(name, value) {
    this._emit('property', { name, value })
  }
  _end(status, result) {
    if (this._status !== STATUS.PENDING && this._status !== STATUS.ABORTING) return
    this._status = this._status === STATUS.ABORTING ? STATUS.ABORTED : status
    this._emit('end', { status: this._status, result })
  }
  success(result) {
    this._end(STATUS.SUCCESS, result)
  }
  failure(error) {
    this._end(STATUS.FAILURE, error)
  }
  async runInside(fn) {
    this.start()
    this._running = true
    try {
      const result = await storage.run(this, fn)
      if (this._status === STATUS.ABORTING) this._end(STATUS.ABORTED, result)
      return result
    } catch (error) {
      this._end(STATUS.FAILURE, error)
      throw error
    } finally {
      this._running = false
    }
  }
  async run(fn) {
    const result = await this.runInside(fn)
    this._end(STATUS.SUCCESS, result)
    return result
  }
  wrap(fn) {
    const task = this
    return function taskRun(...args) {
      return task.run(() => fn.apply(this, args))
    }
  }
  wrapInside(fn) {
    const task = this
    return function taskRunInside(...args) {
      return task.runInside(() => fn.apply(this, args))
    }
  }
}
module.exports = { Task, STATUS }
