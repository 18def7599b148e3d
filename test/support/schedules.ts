/** ScheduleService calls against a test daemon, and the schedule's jobs and events. */
import { credentials } from '@grpc/grpc-js';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest, SubmitJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import {
  CreateScheduleRequest,
  ScheduleServiceClient,
  type DeleteScheduleRequest,
  type DeleteScheduleResponse,
  type GetScheduleRequest,
  type ListSchedulesRequest,
  type ListSchedulesResponse,
  type Schedule,
  type ScheduleEvent,
  type TriggerScheduleRequest,
  type UpdateScheduleRequest,
} from '../../src/gen/hpcq/v1/schedule_service.js';
import { call, listJobs, type DaemonHandle } from './daemon-harness.js';
import { submitRequest } from './submit-request.js';

const clients = new WeakMap<DaemonHandle, InstanceType<typeof ScheduleServiceClient>>();

export function scheduleClient(d: DaemonHandle): InstanceType<typeof ScheduleServiceClient> {
  let client = clients.get(d);
  if (!client) clients.set(d, (client = new ScheduleServiceClient(d.address, credentials.createInsecure())));
  return client;
}

export function createSchedule(d: DaemonHandle, req: Partial<Omit<CreateScheduleRequest, 'job'>> & { job: Partial<SubmitJobRequest> }): Promise<Schedule> {
  const c = scheduleClient(d);
  return call<CreateScheduleRequest, Schedule>(c.createSchedule, c, CreateScheduleRequest.fromPartial({ ...req, job: submitRequest(req.job) }));
}

export function getSchedule(d: DaemonHandle, scheduleId: string, eventCount = 0): Promise<Schedule> {
  const c = scheduleClient(d);
  return call<GetScheduleRequest, Schedule>(c.getSchedule, c, { scheduleId, eventCount });
}

export function listSchedules(d: DaemonHandle, req: Partial<ListSchedulesRequest> = {}): Promise<ListSchedulesResponse> {
  const c = scheduleClient(d);
  return call<ListSchedulesRequest, ListSchedulesResponse>(c.listSchedules, c, { pageSize: 0, pageToken: '', ...req });
}

export function updateSchedule(d: DaemonHandle, req: Partial<UpdateScheduleRequest> & { scheduleId: string }): Promise<Schedule> {
  const c = scheduleClient(d);
  return call<UpdateScheduleRequest, Schedule>(c.updateSchedule, c, { job: undefined, ...req });
}

export function deleteSchedule(d: DaemonHandle, scheduleId: string): Promise<DeleteScheduleResponse> {
  const c = scheduleClient(d);
  return call<DeleteScheduleRequest, DeleteScheduleResponse>(c.deleteSchedule, c, { scheduleId });
}

export function triggerSchedule(d: DaemonHandle, req: Partial<TriggerScheduleRequest> & { scheduleId: string }): Promise<SubmitJobResponse> {
  const c = scheduleClient(d);
  return call<TriggerScheduleRequest, SubmitJobResponse>(c.triggerSchedule, c, { eventId: '', overrides: undefined, ...req });
}

/** Every event the schedule has kept (up to 1,000), oldest first. */
export async function eventsOf(d: DaemonHandle, scheduleId: string): Promise<ScheduleEvent[]> {
  return (await getSchedule(d, scheduleId, 1000)).recentEvents;
}

/** Every job the schedule made, oldest first (array instances not listed). */
export async function jobsOf(d: DaemonHandle, scheduleId: string): Promise<Job[]> {
  const jobs: Job[] = [];
  let pageToken = '';
  do {
    const page = await listJobs(d, { pageSize: 1000, pageToken });
    jobs.push(...page.jobs.filter((j) => j.scheduleId === scheduleId));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return jobs.reverse();
}

export const EVERY_SECOND = '* * * * * *';
