// `vfio-twin/host`: the host backend, the same UserProcess calls on this machine's kernel
// through koffi (an optional dependency: `npm install koffi`; createHost() says so when it is
// missing). Also exported from `vfio-twin` itself.

export { createHost, hostAvailable, koffiAvailable, HostBackend, HostProcess } from "../backend/host.js";
