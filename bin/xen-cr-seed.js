#!/usr/bin/env node
import '../dist/cli/xen-cr-seed-main.js'
