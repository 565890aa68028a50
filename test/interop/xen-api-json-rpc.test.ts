import { describe } from 'vitest'
import { clientScenario } from './xen-api-client.shared.js'

describe('the real xen-api client over JSON-RPC against the lab', () => clientScenario('json-rpc'))
