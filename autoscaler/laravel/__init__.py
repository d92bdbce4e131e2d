"""What Laravel defines: its Redis queue keys, its job payloads and its workers' log lines.

Public surface: `queue_sample.QueueSample` (one queue at one instant), `sampler.QueueSampler`
(all of a tick's queue reads in one pipeline), `headjob` (the head job's age from its payload),
`fifo` (the oldest job's age on every version, by FIFO accounting of the list), `worklog`
(parse `queue:work` output, three generations) and `discovery` (which queues exist).
An adapter: it reads Laravel's world and returns numbers, never decisions.
"""
