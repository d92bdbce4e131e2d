<?php

namespace App\Console\Commands;

use App\Jobs\BatchedWork;
use App\Jobs\SecretWork;
use App\Jobs\Work;
use Illuminate\Console\Command;
use Illuminate\Support\Str;

/**
 * Pushes N jobs of S seconds onto a queue the way an application does (Queue::push or
 * Queue::later), and prints one line per job: `<job id> <unix time after the push>`.
 */
class PushJobs extends Command
{
    protected $signature = 'jobs:push
        {count=1 : how many jobs}
        {--seconds=0 : how long each job works}
        {--queue=default : the queue}
        {--kind=plain : plain, encrypted, chained, batched or flaky (fails its first attempt)}
        {--spread=0 : push them evenly over this many seconds}
        {--delay=0 : push with Queue::later, due after this many seconds}
        {--ballast-mb=0 : memory each job keeps in its worker}
        {--tag= : a tag each job records with its runs}';

    protected $description = 'Push N jobs of S seconds onto a queue';

    public function handle(): int
    {
        $count = (int) $this->argument('count');
        $spread = (float) $this->option('spread');
        $delay = (int) $this->option('delay');
        $queue = app('queue')->connection();
        $start = microtime(true);
        for ($i = 0; $i < $count; $i++) {
            if ($spread > 0 && $count > 1) {
                $at = $start + $spread * $i / ($count - 1);
                if (($wait = $at - microtime(true)) > 0) {
                    usleep((int) ($wait * 1e6));
                }
            }
            $job = $this->makeJob();
            $id = $delay > 0
                ? $queue->later($delay, $job, '', $this->option('queue'))
                : $queue->push($job, '', $this->option('queue'));
            $this->line(sprintf('%s %.6f', $id, microtime(true)));
        }
        return 0;
    }

    private function makeJob(): Work
    {
        $seconds = (float) $this->option('seconds');
        $tag = (string) $this->option('tag');
        $ballast = (int) $this->option('ballast-mb');
        switch ($this->option('kind')) {
            case 'encrypted':
                return new SecretWork($seconds, $tag, $ballast);
            case 'chained':
                return (new Work($seconds, $tag, $ballast))->allOnQueue($this->option('queue'))->chain([
                    new Work($seconds, $tag . ':chain-1'),
                    new Work($seconds, $tag . ':chain-2'),
                ]);
            case 'flaky':
                return new Work($seconds, $tag, $ballast, true);
            case 'batched':
                return (new BatchedWork($seconds, $tag, $ballast))->withBatchId((string) Str::uuid());
            default:
                return new Work($seconds, $tag, $ballast);
        }
    }
}
