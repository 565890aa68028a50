import { describe } from 'vitest'
import { clientScenario } from './xen-api-client.shared.js'

describe('the real xen-api client over XML-RPC against the lab', () => clientScenario('xml-rpc'))
