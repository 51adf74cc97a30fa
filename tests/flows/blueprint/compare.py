# As cnvrg's published compare components find the winner: its CNVRG_<TASK>_PASSED_CONDITION variable
import os

for k in os.environ:
    if 'PASSED_CONDITION' in k and os.environ[k] == 'true':
        task_name = k.replace('CNVRG_', '').replace('_PASSED_CONDITION', '').lower()
print('cnvrg_tag_winner_task:', task_name)
assert os.environ['CNVRG_TASKS_PASSED_CONDITION'].endswith('/' + task_name), os.environ['CNVRG_TASKS_PASSED_CONDITION']
