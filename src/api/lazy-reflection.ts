/**
 * gRPC server reflection (v1 and v1alpha, as @grpc/reflection serves them), built on its first
 * call. The reflection service decodes and indexes the descriptors of every hpcq .proto when it is
 * made: about 4.5 MiB of heap a daemon would carry all its life for the few clients (grpcurl,
 * Postman, evans) that ever ask. Here the daemon registers the library's own service definitions,
 * taken from a reflection service over an empty package (cheap), and the first call of either
 * version builds the real one and hands every call to it from then on.
 */
import type { Server, ServiceDefinition, UntypedHandleCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

interface Registered {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

/** The services a ReflectionService adds to a server, as it adds them (its public addToServer). */
function servicesOf(reflection: ReflectionService): Registered[] {
  const services: Registered[] = [];
  reflection.addToServer({ addService: (definition, implementation) => void services.push({ definition, implementation }) });
  return services;
}

/** A service's identity: the full path of its first method (e.g. /grpc.reflection.v1.ServerReflection/ServerReflectionInfo). */
const serviceKey = (definition: ServiceDefinition): string => Object.values(definition)[0]?.path ?? '';

/** Adds reflection over the package `load` returns, which is called (once) on the first reflection call. */
export function addLazyReflection(server: Pick<Server, 'addService'>, load: () => PackageDefinition): void {
  let real: Map<string, UntypedServiceImplementation> | undefined;
  const implementationOf = (key: string): UntypedServiceImplementation => {
    real ??= new Map(servicesOf(new ReflectionService(load())).map((s) => [serviceKey(s.definition), s.implementation]));
    const implementation = real.get(key);
    if (!implementation) throw new Error(`@grpc/reflection no longer serves ${key}`);
    return implementation;
  };
  for (const shell of servicesOf(new ReflectionService({}))) {
    const key = serviceKey(shell.definition);
    const deferred = Object.fromEntries(
      Object.keys(shell.implementation).map((method) => {
        const handler = (...args: unknown[]) => (implementationOf(key)[method] as (...a: unknown[]) => unknown)(...args);
        return [method, handler as UntypedHandleCall];
      }),
    );
    server.addService(shell.definition, deferred);
  }
}
